import torch

from trainer.dropout import Dropout, keep_mask


def test_keep_rate_and_expectation():
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([2_000_000]), 0.1, torch.device("cpu"))
    assert abs(mask.float().mean().item() - 0.9) < 1e-3  # 5 sigma is 1e-3
    x = torch.ones(2_000_000)
    assert abs(Dropout(0.1).train()(x).mean().item() - 1.0) < 2e-3


def test_sixteen_bit_lanes_are_uniform():
    torch.manual_seed(0)
    words = torch.randint(-(2**63), 2**63 - 1, (200_000,), dtype=torch.int64)
    lanes = words.view(torch.int16).view(-1, 4).to(torch.int32) + 32768
    for lane in range(4):  # each of the four lanes, 16 buckets each
        counts = torch.bincount(lanes[:, lane] // 4096, minlength=16).float()
        chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum().item()
        assert chi2 < 45, (lane, chi2)  # 15 dof: p < 1e-4


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
