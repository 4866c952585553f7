import numpy as np
import pytest
import torch

from ablab.trainer.data.batching import EncodedSplit, sorted_batches, token_batches
from ablab.trainer.data.ragged import Ragged
from ablab.trainer.data.tokenizer import BOS, EOS, PAD


def split_of(src: list[list[int]], tgt: list[list[int]]) -> EncodedSplit:
    return EncodedSplit(Ragged.from_lists(src), Ragged.from_lists(tgt))


def random_split(n=500, seed=0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 100, size=rng.integers(1, 40)).tolist() for _ in range(n)]
    tgt = [rng.integers(4, 100, size=rng.integers(1, 40)).tolist() for _ in range(n)]
    return split_of(src, tgt)


def test_every_pair_exactly_once_per_epoch_within_budget():
    split = random_split()
    for epoch in range(3):
        batches = token_batches(split.src_lens, split.tgt_lens, 256, seed=1, epoch=epoch)
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(len(split)))
        for b in batches:
            longest = max(split.src_lens[b].max(), split.tgt_lens[b].max())
            assert len(b) * longest <= 256


def test_deterministic_per_seed_and_epoch():
    split = random_split()
    a = token_batches(split.src_lens, split.tgt_lens, 256, seed=1, epoch=0)
    b = token_batches(split.src_lens, split.tgt_lens, 256, seed=1, epoch=0)
    c = token_batches(split.src_lens, split.tgt_lens, 256, seed=1, epoch=1)
    d = token_batches(split.src_lens, split.tgt_lens, 256, seed=2, epoch=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    assert [x.tolist() for x in a] != [x.tolist() for x in d]


def test_length_bucketing_keeps_padding_low():
    split = random_split(2000)
    batches = token_batches(split.src_lens, split.tgt_lens, 512, seed=1, epoch=0)
    real = sum(int(split.tgt_lens[b].sum()) for b in batches)
    padded = sum(len(b) * int(split.tgt_lens[b].max()) for b in batches)
    assert real / padded > 0.85  # random batches of this data pad to about 0.5


def test_oversized_pair_gets_its_own_batch():
    lens = np.array([5, 50, 5])
    batches = token_batches(lens, lens, 20, seed=0, epoch=0)
    assert sorted(len(b) for b in batches) == [1, 2]


def test_collate_layout():
    split = split_of([[10, 11, 12], [20]], [[30, 31], [40, 41, 42]])
    batch = split.collate(np.array([0, 1]))
    assert batch.src.tolist() == [[10, 11, 12, EOS], [20, EOS, PAD, PAD]]
    assert batch.tgt_in.tolist() == [[BOS, 30, 31, PAD], [BOS, 40, 41, 42]]
    assert batch.tgt_out.tolist() == [[30, 31, EOS, PAD], [40, 41, 42, EOS]]
    assert batch.src_lens.tolist() == [4, 2] and batch.tgt_lens.tolist() == [3, 4]
    assert batch.n_tgt_tokens == 7 == int((batch.tgt_out != PAD).sum())
    assert batch.src.dtype == torch.int64


def test_sorted_batches_cover_everything():
    lens = np.array([5, 3, 9, 1, 7])
    batches = sorted_batches(lens, 2)
    assert [b.tolist() for b in batches] == [[3, 1], [0, 4], [2]]


@pytest.mark.parametrize("max_tokens", [64, 1000])
def test_subset_keeps_alignment(max_tokens):
    split = random_split(50)
    sub = split.subset(np.array([3, 7]))
    assert sub.src[1].tolist() == split.src[7].tolist() and sub.tgt[0].tolist() == split.tgt[3].tolist()


def _padded_row_by_row(src: list[list[int]], tgt: list[list[int]], indices) -> dict[str, np.ndarray]:
    """The batch layout of the module docstring, written out one row at a time."""
    rows_src = [src[i] + [EOS] for i in indices]
    rows_in = [[BOS] + tgt[i] for i in indices]
    rows_out = [tgt[i] + [EOS] for i in indices]

    def pad(rows):
        out = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
        for r, row in enumerate(rows):
            out[r, : len(row)] = row
        return out

    return {
        "src": pad(rows_src),
        "src_lens": np.array([len(r) for r in rows_src]),
        "tgt_in": pad(rows_in),
        "tgt_out": pad(rows_out),
        "tgt_lens": np.array([len(r) for r in rows_out]),
    }


def test_collate_and_subset_equal_a_row_by_row_reference():
    rng = np.random.default_rng(3)
    src = [rng.integers(4, 900, size=rng.integers(0, 30)).tolist() for _ in range(300)]
    tgt = [rng.integers(4, 900, size=rng.integers(0, 30)).tolist() for _ in range(300)]
    split = split_of(src, tgt)
    for indices in (rng.choice(300, 17, replace=False), np.array([5, 5, 0]), np.array([299])):
        batch = split.collate(indices)
        for name, expected in _padded_row_by_row(src, tgt, indices).items():
            assert np.array_equal(getattr(batch, name).numpy(), expected), name
    keep = rng.choice(300, 40, replace=False)
    sub = split.subset(keep)
    assert sub.src.tolist() == [src[i] for i in keep] and sub.tgt.tolist() == [tgt[i] for i in keep]
    halves = Ragged.concat(
        [Ragged.from_lists(src[:120]), Ragged.from_lists([]), Ragged.from_lists(src[120:])]
    )
    assert halves.tolist() == src and np.array_equal(split.src_lens, [len(s) + 1 for s in src])
