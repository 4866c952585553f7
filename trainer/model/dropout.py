"""Inverted dropout with a cheaper CPU random stream.

Semantics are those of ``nn.Dropout``: in training each element is kept with probability
``1 - p`` and scaled by ``1 / (1 - p)``; in eval it is the identity. On CPU, ``bernoulli_``
draws one Mersenne-Twister number per element and dominated our training step (17 % of it);
here each 64-bit draw from torch's generator is cut into four 16-bit uniforms, and an element
is kept iff its uniform is at or above ``round(p * 2**16)``. ``p`` is therefore quantized to a
multiple of 2**-16 (0.1 becomes 0.100006) and the scale uses the quantized value, so the
expectation is preserved exactly. Masks come from torch's global generator: seeded by
``torch.manual_seed`` and restored with the RNG state on resume. On GPU ``F.dropout`` is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANES = 4  # 16-bit uniforms per 64-bit draw


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Boolean mask of ``shape``, each element True with probability ``1 - round(p*2^16)/2^16``."""
    numel = shape.numel()
    words = torch.randint(
        -(2**63), 2**63 - 1, ((numel + LANES - 1) // LANES,), dtype=torch.int64, device=device
    )
    lanes = words.view(torch.int16)[:numel]  # uniform on [-32768, 32767]
    return (lanes >= -32768 + round(p * 65536)).view(shape)


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.scale = 1.0 / (1.0 - round(p * 65536) / 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return x * (keep_mask(x.shape, self.p, x.device).to(x.dtype) * self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"
