import math

import pytest
import torch
import torch.nn.functional as F

from trainer import losses
from trainer.losses import label_smoothed_nll_loss


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("n", [5, losses.CHUNK_ROWS + 37])
def test_equals_library_cross_entropy_in_value_and_gradient(epsilon, n):
    torch.manual_seed(0)
    logits = (torch.randn(n, 50) * 3).requires_grad_()
    target = torch.randint(0, 50, (n,))
    target[::4] = 0  # padding
    ours, nll = label_smoothed_nll_loss(logits, target, epsilon, ignore_index=0)
    (g_ours,) = torch.autograd.grad(ours * 0.5, logits)
    reference = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=epsilon, reduction="sum")
    (g_ref,) = torch.autograd.grad(reference * 0.5, logits)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(g_ours, g_ref)
    torch.testing.assert_close(nll, F.cross_entropy(logits, target, ignore_index=0, reduction="sum"))
    assert not nll.requires_grad


def test_padding_positions_contribute_nothing():
    logits = torch.randn(6, 10, requires_grad=True)
    target = torch.tensor([3, 4, 0, 0, 5, 0])
    loss, _ = label_smoothed_nll_loss(logits, target, 0.1, ignore_index=0)
    loss.backward()
    assert torch.all(logits.grad[[2, 3, 5]] == 0)
    kept, _ = label_smoothed_nll_loss(logits.detach()[[0, 1, 4]], target[[0, 1, 4]], 0.1, ignore_index=0)
    torch.testing.assert_close(loss.detach(), kept)


def test_closed_form_for_uniform_logits():
    K, eps = 16, 0.1
    loss, nll = label_smoothed_nll_loss(torch.zeros(3, K), torch.tensor([1, 2, 3]), eps)
    assert loss.item() == pytest.approx(3 * math.log(K))
    assert nll.item() == pytest.approx(3 * math.log(K))


def test_convention_is_uniform_over_all_classes():
    """With eps, the loss is KL-equivalent to q = (1-eps) one-hot + eps/K (K counts every class)."""
    K, eps = 5, 0.2
    logits = torch.randn(1, K)
    q = torch.full((K,), eps / K)
    q[2] += 1 - eps
    expected = -(q * logits.log_softmax(-1)[0]).sum()
    loss, _ = label_smoothed_nll_loss(logits, torch.tensor([2]), eps)
    torch.testing.assert_close(loss, expected)


def test_bfloat16_logits_are_computed_in_float32():
    torch.manual_seed(1)
    logits = torch.randn(40, 30).bfloat16().requires_grad_()
    target = torch.randint(0, 30, (40,))
    ours, _ = label_smoothed_nll_loss(logits, target, 0.1)
    reference = F.cross_entropy(logits.float(), target, label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(ours, reference)
    ours.backward()
    assert logits.grad.dtype == torch.bfloat16
