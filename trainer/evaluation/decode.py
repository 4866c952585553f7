"""Autoregressive decoding: batched greedy search and beam search.

Models expose ``start(src, src_lens) -> DecodeState`` (encode, cache the memory) and
``step(tokens, state) -> log_probs (B, V)``. Every tensor in a :class:`DecodeState` has the
batch (or batch x beam) on dim 0, so beam search reorders a state with one ``index_select``.

Beam search keeps ``beam`` hypotheses per sentence, ranked by summed log-probability; a
hypothesis that emitted ``</s>`` is frozen (it can only continue with ``</s>`` at no cost).
The search stops when every beam is finished or at the length limit, and the final choice is
by ``score / length**length_penalty`` (length counts ``</s>``). With ``beam = 1`` it is
exactly greedy search.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ablab.trainer.data.tokenizer import BOS, EOS, PAD


class DecodeState:
    """Tensors with the batch on dim 0, plus the number of tokens decoded so far."""

    def __init__(self, tensors: dict[str, torch.Tensor], step: int = 0):
        self.tensors = tensors
        self.step = step

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        self.tensors[name] = value

    def extend(self, name: str, new: torch.Tensor) -> torch.Tensor:
        """Append ``new (B, H, t, dh)`` to the cached ``name`` along time; return the whole."""
        old = self.tensors.get(name)
        self.tensors[name] = new if old is None else torch.cat([old, new], dim=2)
        return self.tensors[name]

    def reorder(self, index: torch.Tensor) -> None:
        self.tensors = {k: v.index_select(0, index) for k, v in self.tensors.items()}


class Decodable(Protocol):
    def start(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecodeState: ...

    def step(self, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor: ...


def max_lengths(src_lens: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence output length limits ``a * source length + b`` (in tokens, with ``</s>``)."""
    return (src_lens.float() * a).long() + b


@torch.no_grad()
def greedy(
    model: Decodable, src: torch.Tensor, src_lens: torch.Tensor, limits: torch.Tensor
) -> list[list[int]]:
    """Argmax decoding; returns token ids per sentence, without ``<s>`` and ``</s>``."""
    B = src.shape[0]
    state = model.start(src, src_lens)
    tokens = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    finished = torch.zeros(B, dtype=torch.bool, device=src.device)
    out = []
    for t in range(int(limits.max())):
        next_tokens = model.step(tokens, state).argmax(-1)
        next_tokens = torch.where(finished, PAD, next_tokens)
        finished |= (next_tokens == EOS) | (t + 1 >= limits)
        out.append(next_tokens)
        tokens = next_tokens
        if bool(finished.all()):
            break
    return _strip(torch.stack(out, dim=1))


@torch.no_grad()
def beam_search(
    model: Decodable,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    limits: torch.Tensor,
    beam: int,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Beam search; returns the best hypothesis per sentence (ids without specials)."""
    B, K, device = src.shape[0], beam, src.device
    expand = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) source of each beam
    state = model.start(src, src_lens)
    state.reorder(expand)
    limits = limits.index_select(0, expand).view(B, K)
    scores = torch.zeros(B, K, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one alive
    tokens = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)
    for _ in range(int(limits.max())):
        logp = model.step(tokens, state).view(B, K, -1)  # (B, K, V)
        V = logp.shape[-1]
        # frozen beams: the only continuation is </s> at no cost
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., EOS] = 0.0
        logp = torch.where(finished[..., None], frozen, logp)
        cand = (scores[..., None] + logp).view(B, K * V)
        scores, flat = cand.topk(K, dim=-1)  # (B, K)
        origin, next_tokens = flat // V, flat % V
        was_finished = finished.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~was_finished).long()
        finished = was_finished | (next_tokens == EOS) | (lengths >= limits)
        history = torch.cat(
            [
                history.gather(1, origin[..., None].expand(-1, -1, history.shape[2])),
                torch.where(was_finished, PAD, next_tokens)[..., None],
            ],
            dim=2,
        )
        state.reorder((origin + torch.arange(B, device=device)[:, None] * K).view(-1))
        tokens = next_tokens.view(-1)
        if bool(finished.all()):
            break
    normalized = scores / lengths.clamp(min=1).float() ** length_penalty
    best = normalized.argmax(-1)  # (B,)
    return _strip(history[torch.arange(B, device=device), best])


def _strip(ids: torch.Tensor) -> list[list[int]]:
    """Rows of ids cut at the first ``</s>``, padding dropped."""
    out = []
    for row in ids.tolist():
        if EOS in row:
            row = row[: row.index(EOS)]
        out.append([i for i in row if i != PAD])
    return out
