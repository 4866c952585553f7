"""Is "differs" trustworthy? The report's comparison on simulated studies with a known answer.

Each study is n seeds of a baseline and of an arm on a new test set (:mod:`analysis.simulation`),
compared on BLEU as the report compares them (:func:`analysis.bootstrap.compare`, α = 0.05, one
comparison, so no Holm adjustment). The noise model is fitted to real runs: by default the
per-sentence BLEU statistics of three seeds of the seed baseline trained 1,000 updates on all of
Multi30k (``benchmarks/data/baseline_bleu_statistics.npz``, from ``statistics/test_2016_flickr.npz``
of those runs; ``--real`` takes other runs' files): their lengths, n-gram precisions and
sentence-bootstrap spreads. The seed sd of corpus BLEU is then set to each of ``--seed-sds``.

Printed:
- the real runs' figures beside the fitted model's;
- the false-positive rate of "differs" on null effects (true Δ = 0) for 3, 5 and 10 seeds and
  each seed sd, with its 95 % binomial interval, beside the rate of the method it replaced
  (sacreBLEU's paired bootstrap over test sentences, seeds' outputs concatenated);
- a second null, the arm better on some sentences and worse on others by as much (zero on
  average over test sets): the comparison against a paired t-test over seeds alone, which
  treats the test set as fixed;
- power for true Δ of 0.5, 1 and 2 BLEU.

    python benchmarks/stats_calibration.py                      # 1,000 studies per cell
    python benchmarks/stats_calibration.py --studies 300        # quicker, rougher
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from analysis.simulation import fit, shift_for, simulate_study, with_seed_sd

REAL = Path(__file__).resolve().parent / "data" / "baseline_bleu_statistics.npz"


def rate(hits: list[bool]) -> str:
    """A share with its 95 % Clopper–Pearson interval."""
    k, n = int(sum(hits)), len(hits)
    ci = scipy_stats.binomtest(k, n).proportion_ci()
    return f"{100 * k / n:5.1f} % [{100 * ci.low:4.1f}, {100 * ci.high:4.1f}]"


def load_real(paths: list[Path]) -> list[np.ndarray]:
    runs = []
    for path in paths:
        with np.load(path) as arrays:
            runs += [arrays[k] for k in sorted(arrays)] if "bleu" not in arrays else [arrays["bleu"]]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000, help="sentence resamples per study")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--seed-sds", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    parser.add_argument("--effects", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--real", type=Path, nargs="+", default=[REAL], help="statistics .npz of real runs")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    started = time.monotonic()

    model, real, simulated = fit(load_real(args.real), rng)
    print(
        f"noise model fitted to {len(load_real(args.real))} real runs ({len(model.ref_lengths)} sentences):"
    )
    for name, label in (
        ("bleu", "corpus BLEU"),
        ("seed_sd", "sd across seeds"),
        ("sentence_sd", "sentence-bootstrap sd of one run"),
        ("pair_sd", "sentence-bootstrap sd of two seeds' difference"),
    ):
        print(f"  {label:<48} real {real[name]:6.2f}   model {simulated[name]:6.2f}")
    print(
        f"  (logits: sentence difficulty sd {model.sentence_sd:.2f}, run-by-sentence noise sd "
        f"{model.noise_sd:.2f}; without a seed effect the sd across seeds is that noise alone)\n"
    )

    def run(model, seeds: int, effect: float, old: bool) -> list:
        return [
            simulate_study(model, seeds, effect, rng, args.resamples, old=old) for _ in range(args.studies)
        ]

    print(f"false-positive rate of 'differs' on null effects ({args.studies} studies per cell, α = 0.05)")
    print(f"{'seed sd':>8} {'seeds':>6}   {'two-level (ablab)':>26}   {'sentences only, concatenated':>28}")
    models = {sd: with_seed_sd(model, sd, rng) for sd in args.seed_sds}
    for sd, m in models.items():
        for seeds in args.seeds:
            results = run(m, seeds, 0.0, old=True)
            print(
                f"{sd:>8.1f} {seeds:>6}   {rate([r.p <= 0.05 for r in results]):>26}   "
                f"{rate([r.p_old <= 0.05 for r in results]):>28}"
            )

    middle_sd = sorted(models)[len(models) // 2]
    middle = models[middle_sd]
    low_sd = min(models)
    crossed = replace(models[low_sd], interaction_sd=model.sentence_sd)
    print(
        f"\nnull with sentence-specific differences (interaction sd {crossed.interaction_sd:.2f} logits, as "
        f"large as the sentences' own spread; seed sd {low_sd:.1f} BLEU)"
    )
    print(f"{'seeds':>6}   {'two-level (ablab)':>26}   {'paired t over seeds only':>26}")
    for seeds in args.seeds:
        results = run(crossed, seeds, 0.0, old=False)
        ours, seeds_only = rate([r.p <= 0.05 for r in results]), rate([r.p_seeds <= 0.05 for r in results])
        print(f"{seeds:>6}   {ours:>26}   {seeds_only:>26}")

    print(f"\npower (share 'differs' at α = 0.05, in the true direction), seed sd {middle_sd:.1f} BLEU")
    print(f"{'true Δ BLEU':>12} " + " ".join(f"{f'{s} seeds':>24}" for s in args.seeds))
    for effect in args.effects:
        shift = shift_for(middle, effect)
        cells = []
        for seeds in args.seeds:
            results = run(middle, seeds, shift, old=False)
            cells.append(f"{rate([r.p <= 0.05 and r.delta > 0 for r in results]):>24}")
        print(f"{effect:>12.1f} " + " ".join(cells))
    print(f"\ntook {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
