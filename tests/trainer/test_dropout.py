import pytest
import torch

from ablab.trainer.model.dropout import LANES, Dropout, keep_mask


def test_keep_rate_and_expectation():
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([2_000_000]), 0.1, torch.device("cpu"))
    assert abs(mask.float().mean().item() - 0.9) < 1e-3  # 5 sigma is 1e-3
    x = torch.ones(2_000_000)
    assert abs(Dropout(0.1).train()(x).mean().item() - 1.0) < 2e-3


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_each_of_the_four_lanes_keeps_at_the_quantized_rate_and_independently(p):
    """keep_mask cuts each 64-bit draw into four 16-bit uniforms: every lane (element index
    mod 4) must keep at 1 − round(p·2¹⁶)/2¹⁶, and two lanes of one draw must not move together."""
    torch.manual_seed(0)
    n = 400_000
    mask = keep_mask(torch.Size([n]), p, torch.device("cpu")).view(-1, LANES).double()
    keep = 1 - round(p * 65536) / 65536
    sd = (keep * (1 - keep) / (n / LANES)) ** 0.5
    for lane in range(LANES):
        assert abs(mask[:, lane].mean().item() - keep) < 4.5 * sd, (lane, mask[:, lane].mean().item())
    for a, b in ((0, 1), (1, 2), (2, 3), (0, 3)):  # joint keep rate of two lanes: keep² if independent
        both = (mask[:, a] * mask[:, b]).mean().item()
        assert abs(both - keep**2) < 4.5 * (keep**2 * (1 - keep**2) / (n / LANES)) ** 0.5, (a, b, both)


def test_eval_and_zero_are_identity_and_training_is_seeded():
    x = torch.randn(10, 10)
    assert Dropout(0.3).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    drop = Dropout(0.3).train()
    torch.manual_seed(5)
    a = drop(x)
    torch.manual_seed(5)
    assert torch.equal(a, drop(x))
    kept = a != 0
    torch.testing.assert_close(a[kept], x[kept] * drop.scale)


def test_gradient_is_masked_and_scaled():
    x = torch.randn(1000, requires_grad=True)
    drop = Dropout(0.5).train()
    y = drop(x)
    y.sum().backward()
    expected = (y.detach() != 0).float() * drop.scale
    torch.testing.assert_close(x.grad, expected)
