"""Time and peak memory of preparing a large user corpus, cold and from the cache.

For each size (100,000 and 1,000,000 pairs by default) a synthetic parallel corpus is generated
once (gzipped, one sentence per line): sentences of 3 to 40 made-up words drawn from a Zipfian
vocabulary of 50,000 (s = 1.1, as word frequencies in text), the target a word-by-word mapping
into a second made-up vocabulary with a few local swaps. Then, each in a fresh process so that
its peak resident memory is its own:

* **cold**: an empty cache; read and check both files, learn the joint BPE (8,000 merges),
  encode every pair, and bucket the first epoch (length-sorted token batches of 4,096 tokens);
* **cached**: the same again with the cache the cold run left: the files are hashed, the
  prepared pairs loaded, the epoch bucketed.

    python benchmarks/data_prep.py                    # 100k and 1M pairs
    python benchmarks/data_prep.py --pairs 300000     # another size

Goal (2 cores): 1M pairs cold under 2 minutes and 3 GB, cached under 15 s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def made_up_words(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pseudo-words of 1 to 4 syllables."""
    words: set[str] = set()
    while len(words) < n:
        k = rng.integers(1, 5, size=n)
        picks = rng.integers(0, len(SYLLABLES), size=(n, 4))
        words.update("".join(SYLLABLES[j] for j in row[:m]) for row, m in zip(picks, k, strict=True))
    return rng.permutation(np.array(sorted(words)[:n], dtype=object))  # frequency unrelated to spelling


def generate(folder: Path, pairs: int, seed: int = 0) -> tuple[Path, Path]:
    """A synthetic parallel corpus of ``pairs`` lines in ``folder`` (kept for the next run)."""
    src_path, tgt_path = folder / f"train{pairs}.src.gz", folder / f"train{pairs}.tgt.gz"
    if src_path.is_file() and tgt_path.is_file():
        return src_path, tgt_path
    rng = np.random.default_rng(seed)
    vocab = 50_000
    src_words, tgt_words = made_up_words(vocab, rng), made_up_words(vocab, rng)
    weights = 1.0 / np.arange(1, vocab + 1) ** 1.1
    lengths = rng.integers(3, 41, size=pairs)
    ids = rng.choice(vocab, size=int(lengths.sum()), p=weights / weights.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    with gzip.open(src_path, "wt", encoding="utf-8") as fs, gzip.open(tgt_path, "wt", encoding="utf-8") as ft:
        for start, length in zip(starts, lengths, strict=True):
            sentence = ids[start : start + length]
            fs.write(" ".join(src_words[sentence]) + " .\n")
            swapped, first = sentence.copy(), np.arange(0, length - 1, 3)
            swapped[first], swapped[first + 1] = sentence[first + 1], sentence[first]
            ft.write(" ".join(tgt_words[swapped]) + " .\n")
    return src_path, tgt_path


def measure(src: str, tgt: str, cache: str) -> None:
    """In this process: prepare the corpus and bucket one epoch; print seconds and peak RSS."""
    from ablab.trainer.data.batching import token_batches
    from ablab.trainer.data.corpus import SplitFiles
    from ablab.trainer.data.prepare import prepare_training

    started = time.perf_counter()
    vocabs, encoded = prepare_training(SplitFiles("train", Path(src), Path(tgt)), 8000, True, Path(cache))
    batches = token_batches(encoded.src_lens, encoded.tgt_lens, 4096, seed=1, epoch=0)
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB
    print(
        json.dumps({"seconds": seconds, "peak_gb": peak_gb, "pairs": len(encoded), "batches": len(batches)})
    )


def run(src: Path, tgt: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(src), str(tgt), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--corpora", type=Path, default=Path(tempfile.gettempdir()) / "ablab-data-prep")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    args.corpora.mkdir(parents=True, exist_ok=True)
    print(f"{'pairs':>10} {'run':>7} {'seconds':>8} {'peak GB':>8} {'batches':>8}")
    for pairs in args.pairs:
        src, tgt = generate(args.corpora, pairs)
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold", "cached"):
                r = run(src, tgt, Path(cache))
                row = (f"{r['pairs']:>10,}", f"{label:>7}", f"{r['seconds']:>8.1f}", f"{r['peak_gb']:>8.2f}")
                print(*row, f"{r['batches']:>8,}")


if __name__ == "__main__":
    main()
