import math

import pytest
import torch
import torch.nn.functional as F

from ablab.trainer.optim import losses
from ablab.trainer.optim.losses import linear_label_smoothed_loss


def _problem(n: int, d: int = 12, K: int = 50, seed: int = 0):
    torch.manual_seed(seed)
    hidden = torch.randn(n, d).requires_grad_()
    weight = (torch.randn(K, d) * 0.5).requires_grad_()
    target = torch.randint(0, K, (n,))
    target[::4] = 0  # padding
    return hidden, weight, target


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 16 rows of a 50-word vocabulary, so that a test crosses chunk boundaries."""
    monkeypatch.setitem(losses.CHUNK_ELEMENTS, "cpu", 16 * 50)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("n", [5, 16, 16 * 3 + 7])
def test_equals_library_cross_entropy_of_the_projection_in_value_and_gradients(epsilon, n, small_chunks):
    hidden, weight, target = _problem(n)
    ours, nll = linear_label_smoothed_loss(hidden, weight, target, epsilon, ignore_index=0)
    g_ours = torch.autograd.grad(ours * 0.5, (hidden, weight))
    logits = F.linear(hidden, weight)
    reference = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=epsilon, reduction="sum")
    g_ref = torch.autograd.grad(reference * 0.5, (hidden, weight))
    torch.testing.assert_close(ours, reference)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(nll, F.cross_entropy(logits, target, ignore_index=0, reduction="sum"))
    assert not nll.requires_grad


def test_padding_positions_contribute_nothing(small_chunks):
    hidden, weight, target = _problem(40)
    loss, _ = linear_label_smoothed_loss(hidden, weight, target, 0.1, ignore_index=0)
    loss.backward()
    padded = target == 0
    assert torch.all(hidden.grad[padded] == 0) and torch.any(hidden.grad[~padded] != 0)
    kept, _ = linear_label_smoothed_loss(hidden.detach()[~padded], weight.detach(), target[~padded], 0.1, 0)
    torch.testing.assert_close(loss.detach(), kept)


def test_closed_form_for_uniform_logits():
    K, eps = 16, 0.1
    loss, nll = linear_label_smoothed_loss(torch.zeros(3, 4), torch.randn(K, 4), torch.tensor([1, 2, 3]), eps)
    assert loss.item() == pytest.approx(3 * math.log(K))
    assert nll.item() == pytest.approx(3 * math.log(K))


def test_convention_is_uniform_over_all_classes():
    """With eps, the loss is KL-equivalent to q = (1-eps) one-hot + eps/K (K counts every class)."""
    K, eps = 5, 0.2
    hidden, weight = torch.randn(1, 3), torch.randn(K, 3)
    q = torch.full((K,), eps / K)
    q[2] += 1 - eps
    expected = -(q * (hidden @ weight.T).log_softmax(-1)[0]).sum()
    loss, _ = linear_label_smoothed_loss(hidden, weight, torch.tensor([2]), eps)
    torch.testing.assert_close(loss, expected)


def test_under_bf16_autocast_the_projection_is_bf16_as_linear_is_and_the_loss_float32(small_chunks):
    hidden, weight, target = _problem(40, seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = linear_label_smoothed_loss(hidden, weight, target, 0.1)
        logits = F.linear(hidden, weight)
    assert logits.dtype == torch.bfloat16
    reference = F.cross_entropy(logits.float(), target, label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(ours, reference)
    g_ours = torch.autograd.grad(ours, (hidden, weight))
    g_ref = torch.autograd.grad(reference, (hidden, weight))
    for a, b in zip(g_ours, g_ref, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0.02, atol=0.02)


def test_tied_weight_gets_the_gradients_of_both_uses():
    """The output projection shares its weight with the embedding: autograd sums both."""
    hidden, weight, target = _problem(8)
    tokens = torch.tensor([1, 2, 2])
    (
        F.embedding(tokens, weight).sum() + linear_label_smoothed_loss(hidden, weight, target, 0.1)[0]
    ).backward()
    ours = weight.grad.clone()
    weight.grad = None
    logits = F.linear(hidden, weight)
    reference = F.cross_entropy(logits, target, label_smoothing=0.1, reduction="sum")
    (F.embedding(tokens, weight).sum() + reference).backward()
    torch.testing.assert_close(ours, weight.grad)
