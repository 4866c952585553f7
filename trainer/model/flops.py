"""Training FLOPs of an encoder-decoder step, for model FLOPs utilization (MFU).

Per step with real (unpadded) source lengths ``s_i`` and target lengths ``t_i``::

    6 * (N_enc * sum(s) + (N_dec + d * V) * sum(t))
      + 12 * d * (L_e * sum(s^2) + L_d * sum(t^2) + L_c * sum(t * s))

``N_enc``, ``N_dec`` are the matmul parameters of the encoder and decoder (embeddings and
the output projection excluded; ``d * V`` is the output projection), each used once per
token in a multiply-add: 2 FLOPs forward, 4 backward. The attention term counts the two
score/value matmuls (``2 * 2 * d`` FLOPs per query-key pair forward, times 3 with backward)
over ``L_e`` encoder self-attention, ``L_d`` decoder self-attention and ``L_c`` cross-attention
layers. Padding is excluded: MFU measures useful work. For the decoder's causal
self-attention the full ``t^2`` is counted, as the convention does; and the convention charges
the cross-attention K/V projections (part of ``N_dec``) per target token although they run
once per source token. Apart from that last point the formula equals torch's FLOP counter
on a real training step exactly (``tests/trainer/test_flops.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn


@dataclass(frozen=True)
class FlopsProfile:
    n_enc: int
    n_dec: int
    d_model: int
    vocab: int
    enc_self_layers: int
    dec_self_layers: int
    cross_layers: int

    def step_flops(self, src_lens: np.ndarray, tgt_lens: np.ndarray) -> float:
        """Training FLOPs (forward + backward) of one batch with these real lengths."""
        s = np.asarray(src_lens, dtype=np.float64)
        t = np.asarray(tgt_lens, dtype=np.float64)
        dense = 6.0 * (self.n_enc * s.sum() + (self.n_dec + self.d_model * self.vocab) * t.sum())
        attention = (
            12.0
            * self.d_model
            * (
                self.enc_self_layers * (s**2).sum()
                + self.dec_self_layers * (t**2).sum()
                + self.cross_layers * (t * s).sum()
            )
        )
        return float(dense + attention)

    @property
    def decode_step_flops(self) -> float:
        """FLOPs of one decoding step of one sentence, as counted for speed estimates: the
        decoder's matmuls and the output projection for one token, forward only,
        ``2 * (N_dec + d * V)`` (attention over the cached prefix left out)."""
        return 2.0 * (self.n_dec + self.d_model * self.vocab)


def matmul_params(module: nn.Module) -> int:
    """Weights of the matrix multiplies in ``module``: Linear weights and GRU/RNN weight matrices.

    Biases, norms and embeddings do no matmul and are not counted.
    """
    total = 0
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            total += sub.weight.numel()
        elif isinstance(sub, nn.RNNBase):
            total += sum(p.numel() for name, p in sub.named_parameters() if name.startswith("weight"))
    return total
