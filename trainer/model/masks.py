"""Attention masks: boolean, ``True`` where a query may attend a key.

This is the convention of ``F.scaled_dot_product_attention``'s boolean ``attn_mask`` and of
the Annotated Transformer's ``subsequent_mask``; it is the negation of ``nn.Transformer``'s
``key_padding_mask`` (``True`` = ignore) and the ``== 0`` of its float causal mask
(``-inf`` = ignore). Shapes broadcast against attention scores ``(B, heads, T_query, T_key)``.
"""

from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, 1, 1, max_len)``: key ``j`` of sequence ``b`` may be attended iff ``j < lengths[b]``."""
    positions = torch.arange(max_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def causal_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """``(size, size)``: query ``i`` may attend key ``j`` iff ``j <= i`` (lower triangle)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def decoder_self_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 1, size, size)``: causal and not padding, the decoder self-attention mask."""
    return padding_mask(lengths, size) & causal_mask(size, lengths.device)
