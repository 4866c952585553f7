"""Token ids to padded tensors: token-budget batches, length-bucketed and deterministic.

Sequence layout (ids from :mod:`ablab.trainer.data.tokenizer`):

* source   ``x_1 .. x_m </s>``                      length ``m + 1``
* tgt_in   ``<s> y_1 .. y_n``    (decoder input)     length ``n + 1``
* tgt_out  ``y_1 .. y_n </s>``   (what is predicted) length ``n + 1``

All are right-padded with ``<pad>`` (id 0). The batches of an epoch are a pure function of
(lengths, ``max_tokens``, seed, epoch): a random permutation breaks ties, a stable sort by
(target, source) length groups similar lengths, greedy packing fills each batch up to the
budget, and the batch order is shuffled. Every pair is in exactly one batch per epoch, and a
resumed run rebuilds the same batches from (seed, epoch) and skips the ones already done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ablab.trainer.data.ragged import Ragged
from ablab.trainer.data.tokenizer import BOS, EOS, PAD


@dataclass(frozen=True)
class Batch:
    src: torch.Tensor  # (B, S) int64
    src_lens: torch.Tensor  # (B,) int64, source lengths including </s>
    tgt_in: torch.Tensor  # (B, T) int64
    tgt_out: torch.Tensor  # (B, T) int64
    tgt_lens: torch.Tensor  # (B,) int64, target lengths including </s>

    @property
    def n_tgt_tokens(self) -> int:
        """Non-pad target tokens: the unit of throughput and of loss normalization."""
        return int(self.tgt_lens.sum())

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        return Batch(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of a split, without specials: source and target sequences, aligned."""

    src: Ragged
    tgt: Ragged

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_lens(self) -> np.ndarray:
        """Source lengths including ``</s>``."""
        return self.src.lengths + 1

    @property
    def tgt_lens(self) -> np.ndarray:
        """Target lengths including ``</s>`` (equal to the ``tgt_in`` length with ``<s>``)."""
        return self.tgt.lengths + 1

    def subset(self, indices: np.ndarray) -> EncodedSplit:
        return EncodedSplit(self.src.take(indices), self.tgt.take(indices))

    def collate(self, indices: np.ndarray) -> Batch:
        """Pad the pairs at ``indices`` into one :class:`Batch`, in the order given."""
        n = len(indices)
        every = np.arange(n)
        s_len, s_rows, s_cols, s_ids = self.src.gather(indices)
        t_len, t_rows, t_cols, t_ids = self.tgt.gather(indices)
        src = np.full((n, s_len.max() + 1), PAD, dtype=np.int64)
        src[s_rows, s_cols] = s_ids
        src[every, s_len] = EOS
        tgt_in = np.full((n, t_len.max() + 1), PAD, dtype=np.int64)
        tgt_in[:, 0] = BOS
        tgt_in[t_rows, t_cols + 1] = t_ids
        tgt_out = np.full_like(tgt_in, PAD)
        tgt_out[t_rows, t_cols] = t_ids
        tgt_out[every, t_len] = EOS
        return Batch(
            torch.from_numpy(src),
            torch.from_numpy(s_len + 1),
            torch.from_numpy(tgt_in),
            torch.from_numpy(tgt_out),
            torch.from_numpy(t_len + 1),
        )


def token_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """Index batches of one epoch: ``len(batch) * max(longest src, longest tgt) <= max_tokens``.

    A pair longer than ``max_tokens`` on its own becomes a batch of one.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(src_lens))
    order = perm[np.lexsort((src_lens[perm], tgt_lens[perm]))]
    longest = np.maximum(src_lens, tgt_lens)
    batches, current, current_max = [], [], 0
    for idx in order:
        new_max = max(current_max, int(longest[idx]))
        if current and (len(current) + 1) * new_max > max_tokens:
            batches.append(np.asarray(current, dtype=np.int64))
            current, new_max = [], int(longest[idx])
        current.append(idx)
        current_max = new_max
    if current:
        batches.append(np.asarray(current, dtype=np.int64))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(src_lens: np.ndarray, batch_sentences: int) -> list[np.ndarray]:
    """Evaluation batches: indices sorted by source length, ``batch_sentences`` per batch."""
    order = np.argsort(src_lens, kind="stable")
    return [order[i : i + batch_sentences] for i in range(0, len(order), batch_sentences)]
