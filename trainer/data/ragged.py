"""Variable-length integer sequences (token ids of many sentences) in two flat arrays."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ragged:
    """Sequences of token ids stored end to end: sequence ``i`` is
    ``values[offsets[i]:offsets[i + 1]]``. Two arrays whatever the number of sentences, so a
    million-pair corpus costs no Python object per sentence, and saves and loads as it is."""

    values: np.ndarray  # (total,) int32
    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0

    @classmethod
    def from_lists(cls, seqs: list[list[int]]) -> Ragged:
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def concat(cls, parts: list[Ragged]) -> Ragged:
        if not parts:
            return cls.from_lists([])
        ends = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate(
            [parts[0].offsets[:1]] + [p.offsets[1:] + e for p, e in zip(parts, ends, strict=True)]
        )
        return cls(np.concatenate([p.values for p in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def tolist(self) -> list[list[int]]:
        return [seq.tolist() for seq in self]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For the sequences at ``indices``: their lengths, and for every token of them the row
        (position in ``indices``) and the column it goes to, with its id, as flat arrays."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.offsets[indices + 1] - self.offsets[indices]
        rows = np.repeat(np.arange(len(indices)), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = np.arange(int(lengths.sum())) - starts
        ids = self.values[np.repeat(self.offsets[indices], lengths) + cols]
        return lengths, rows, cols, ids.astype(np.int64)

    def take(self, indices: np.ndarray) -> Ragged:
        lengths, _, _, ids = self.gather(indices)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(ids.astype(np.int32), offsets)
