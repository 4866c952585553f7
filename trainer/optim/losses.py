"""Label-smoothed cross-entropy of the output projection, summed over target tokens.

Convention (Szegedy et al. 2016, and ``F.cross_entropy(..., label_smoothing=eps)``): the target
distribution mixes the one-hot gold label with a uniform distribution over all ``K`` classes,

    q(k) = (1 - eps) * [k = y] + eps / K,

so the gold class gets ``1 - eps + eps/K`` and every other class ``eps/K`` (padding and the
other specials included in ``K``). With logits ``x = h W^T`` and ``lse = log sum_k exp(x_k)``
the loss of one token is

    -sum_k q(k) log p(k) = lse - (1 - eps) * x_y - (eps / K) * sum_k x_k,

and its gradient with respect to the logits is ``g = softmax(x) - q``, so ``dL/dh = g W`` and
``dL/dW = g^T h``. Positions whose target is ``ignore_index`` contribute nothing.

The projection and the loss are fused, row chunk by row chunk: a chunk's logits are computed,
turned into its loss and gradient while they are in cache, and multiplied back into the
gradients of ``h`` and ``W`` at once, so the (tokens x vocabulary) matrix is never materialized
(the idea of fused linear cross-entropy kernels). Backward only scales the two small gradients.
Unfused, the projection's output, the loss's gradient buffer and autograd's scaling of it were
three fresh (tokens x vocabulary) tensors per update, 130 MB each on the baseline; allocating
them (page faults) and passing over them made a CPU update 1.14x slower in fp32 and 1.12x in
bf16 with native bf16, 1.23x in fp32 with AVX2 only (the same updates, alternated in one
process). Logits are computed in the autocast dtype where autocast is on, as ``nn.Linear``
would compute them; the loss and the gradients of ``h`` and ``W`` are accumulated in float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ablab.trainer.config.schema import LossConfig

# elements of one chunk of logits: 2M float32 = 8 MB fits a CPU's L3; a GPU takes larger pieces
CHUNK_ELEMENTS = {"cpu": 2**21, "cuda": 2**26}


class _LinearLabelSmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, epsilon, ignore_index, dtype):
        N, K = hidden.shape[0], weight.shape[0]
        h, w = hidden.to(dtype), weight.to(dtype)
        want_grad = hidden.requires_grad or weight.requires_grad
        grad_h = torch.empty_like(hidden) if want_grad else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_grad else None
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        nll = torch.zeros((), dtype=torch.float32, device=hidden.device)
        rows = max(1, CHUNK_ELEMENTS.get(hidden.device.type, 2**21) // K)
        for start in range(0, N, rows):
            h_chunk, y = h[start : start + rows], target[start : start + rows]
            x = (h_chunk @ w.T).float()
            keep = y != ignore_index
            y = y.masked_fill(~keep, 0)
            lse = torch.logsumexp(x, dim=-1)
            token_nll = lse - x.gather(1, y[:, None])[:, 0]
            token_loss = (1.0 - epsilon) * token_nll + epsilon * (lse - x.mean(dim=-1))
            nll += token_nll.masked_fill(~keep, 0.0).sum()
            loss += token_loss.masked_fill(~keep, 0.0).sum()
            if want_grad:
                g = x.sub_(lse[:, None]).exp_().sub_(epsilon / K)  # softmax - eps/K
                g.scatter_add_(1, y[:, None], torch.full_like(lse[:, None], epsilon - 1.0))
                g = g.mul_(keep[:, None]).to(dtype)
                grad_h[start : start + rows] = g @ w
                grad_w += g.T @ h_chunk
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(nll)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None, None


def linear_label_smoothed_loss(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed smoothed loss and summed NLL of the logits ``hidden (N, d) @ weight (K, d)^T``
    against ``target (N,)``.

    The first equals ``F.cross_entropy(F.linear(hidden, weight), target, ignore_index=ignore_index,
    label_smoothing=epsilon, reduction="sum")`` in value and in its gradients to ``hidden`` and
    ``weight``; the second is the same with ``epsilon = 0`` and carries no gradient.
    """
    device_type = hidden.device.type
    autocast = torch.is_autocast_enabled(device_type)
    dtype = torch.get_autocast_dtype(device_type) if autocast else hidden.dtype
    with torch.autocast(device_type, enabled=False):
        return _LinearLabelSmoothedCrossEntropy.apply(hidden, weight, target, epsilon, ignore_index, dtype)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(hidden, output weight, target) -> (summed smoothed loss, summed NLL)``: what the loop calls."""


def build_loss(cfg: LossConfig) -> Loss:
    """The training loss the ``loss`` section describes: label smoothing ``cfg.label_smoothing``."""
    return functools.partial(linear_label_smoothed_loss, epsilon=cfg.label_smoothing)
