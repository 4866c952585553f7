"""Is "differs" trustworthy at every level Holm tests at? The comparison on simulated studies
with a known answer, beside the method it replaced.

Holm's first step tests the smallest of k p-values at α/k: a report of 12 BLEU comparisons
decides at α/12, one of 60 at α/60. Printed:

1. **False-positive rate / α** on null effects at α = 0.05, α/12 and α/60, for 3, 5 and 10
   seeds and the sentences' share of Var(Δ) from 0.05 to 0.9 (paired seeds give the large shares,
   unpaired the small ones), by ablab's test (Welch's critical function, :mod:`ablab.analysis.critical`)
   and by the one before (Student's t with Satterthwaite's degrees of freedom). The studies are
   drawn from the exact distributions of the comparison's statistics (:mod:`ablab.analysis.replica`,
   ``--studies`` per cell, 200,000 by default: at α/60 the rate's 95 % interval is about ±15 %)
   and go through ablab's own formulas.
2. **Power** at true Δ = 0.5, 1 and 2 BLEU, both methods, at the same levels, for the variance
   components of real runs (``--seed-diff-sd``: the sd of one seed's arm − baseline difference,
   the real baseline's √2 × 0.33; ``--sentence-sd``: the sentences' part of Δ's sd): the cost
   of holding the level.
3. **The whole pipeline** at α = 0.05: per-sentence BLEU statistics of simulated runs
   (:mod:`ablab.analysis.simulation`, fitted to three real runs) compared by
   :func:`ablab.analysis.bootstrap.compare` with 1,000 sentence resamples, unpaired and paired seeds,
   beside sacreBLEU's paired bootstrap with the seeds' outputs concatenated (the method before
   the two-level comparison); then a null in which the arm is better on some sentences and worse
   on others (a sentences' share the replica's table spans), against a paired t over seeds.

    python benchmarks/stats_calibration.py                       # about 5 minutes on 2 cores
    python benchmarks/stats_calibration.py --studies 50000 --pipeline-studies 200   # quicker
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from ablab.analysis import replica
from ablab.analysis.simulation import fit, simulate_study, with_seed_sd

REAL = Path(__file__).resolve().parent / "data" / "baseline_bleu_statistics.npz"
ALPHA = 0.05
LEVELS = {"α": ALPHA, "α/12": ALPHA / 12, "α/60": ALPHA / 60}
METHODS = {"ablab (Welch)": replica.welch_p, "before (Satterthwaite)": replica.satterthwaite_p}


def rate(hits: list[bool] | np.ndarray) -> str:
    """A share with its 95 % Clopper–Pearson interval."""
    k, n = int(np.sum(hits)), len(hits)
    ci = scipy_stats.binomtest(k, n).proportion_ci()
    return f"{100 * k / n:5.1f} % [{100 * ci.low:4.1f}, {100 * ci.high:4.1f}]"


def load_real(paths: list[Path]) -> list[np.ndarray]:
    runs = []
    for path in paths:
        with np.load(path) as arrays:
            runs += [arrays[k] for k in sorted(arrays)] if "bleu" not in arrays else [arrays["bleu"]]
    return runs


def calibration(args, rng: np.random.Generator) -> None:
    print(f"1. false-positive rate / nominal on null effects ({args.studies:,} studies per cell)")
    head = " ".join(f"{name:>6}" for name in LEVELS)
    print(f"{'seeds':>5} {'sentences':>9}   {'ablab (Welch)':^20}   {'before (Satterthwaite)':^22}")
    print(f"{'':>5} {'share':>9}   {head}   {head}")
    for n in args.seeds:
        for share in args.shares:
            studies = replica.draw(n, share, args.studies, rng)
            cells = []
            for method in METHODS.values():
                p = method(studies)
                cells.append(" ".join(f"{np.mean(p <= a) / a:6.2f}" for a in LEVELS.values()))
            print(f"{n:>5} {share:>9.2f}   {cells[0]}   {cells[1]}")


def power(args, rng: np.random.Generator) -> None:
    print(
        f"\n2. power (share 'differs' in the true direction), seed-difference sd {args.seed_diff_sd} BLEU, "
        f"sentences' part {args.sentence_sd} BLEU ({args.studies // 4:,} studies per cell)"
    )
    print(f"{'seeds':>5} {'share':>6} {'Δ BLEU':>7}   " + "   ".join(f"{m:^22}" for m in METHODS))
    print(f"{'':>21}   " + "   ".join(" ".join(f"{name:>6}" for name in LEVELS) + "  " for _ in METHODS))
    for n in args.seeds:
        sd = math.sqrt(args.seed_diff_sd**2 / n + args.sentence_sd**2)
        share = args.sentence_sd**2 / sd**2
        for effect in args.effects:
            studies = replica.draw(n, share, args.studies // 4, rng, effect=effect / sd)
            cells = []
            for method in METHODS.values():
                p, right = method(studies), studies.delta > 0
                cells.append(" ".join(f"{np.mean((p <= a) & right):6.2f}" for a in LEVELS.values()) + "  ")
            print(f"{n:>5} {share:>6.2f} {effect:>7.1f}   " + "   ".join(cells))


def pipeline(args, rng: np.random.Generator) -> None:
    model, real, simulated = fit(load_real(args.real), rng)
    print(f"\n3. the whole pipeline at α = 0.05 ({args.pipeline_studies} studies per cell); noise model:")
    for name, label in (
        ("bleu", "corpus BLEU"),
        ("seed_sd", "sd across seeds"),
        ("sentence_sd", "sentence-bootstrap sd of one run"),
        ("pair_sd", "sentence-bootstrap sd of two seeds' difference"),
    ):
        print(f"  {label:<48} real {real[name]:6.2f}   model {simulated[name]:6.2f}")
    seeded = with_seed_sd(model, args.pipeline_seed_sd, rng)

    def run(m, seeds: int, old: bool, pairing: float = 0.0) -> list:
        return [
            simulate_study(m, seeds, 0.0, rng, args.resamples, old=old, pairing=pairing)
            for _ in range(args.pipeline_studies)
        ]

    print(
        f"seed sd {args.pipeline_seed_sd} BLEU per run; paired: the arm's seed effect correlates 0.96 "
        "with the baseline's"
    )
    print(f"{'seeds':>6}   {'unpaired':>26}   {'paired':>26}   {'sentences only, concatenated':>28}")
    for seeds in args.seeds:
        unpaired, paired = run(seeded, seeds, True), run(seeded, seeds, False, pairing=0.96)
        print(
            f"{seeds:>6}   {rate([r.p <= ALPHA for r in unpaired]):>26}   "
            f"{rate([r.p <= ALPHA for r in paired]):>26}   {rate([r.p_old <= ALPHA for r in unpaired]):>28}"
        )
    crossed = replace(model, interaction_sd=model.sentence_sd)
    print(f"null with sentence-specific differences (interaction sd {crossed.interaction_sd:.2f} logits)")
    print(f"{'seeds':>6}   {'two-level (ablab)':>26}   {'paired t over seeds only':>26}")
    for seeds in args.seeds:
        results = run(crossed, seeds, False)
        ours, seeds_only = rate([r.p <= ALPHA for r in results]), rate([r.p_seeds <= ALPHA for r in results])
        print(f"{seeds:>6}   {ours:>26}   {seeds_only:>26}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=200_000, help="replica studies per cell")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5, 0.75, 0.9])
    parser.add_argument("--effects", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--seed-diff-sd", type=float, default=0.47)
    parser.add_argument("--sentence-sd", type=float, default=0.25)
    parser.add_argument("--pipeline-studies", type=int, default=500)
    parser.add_argument("--pipeline-seed-sd", type=float, default=1.0)
    parser.add_argument("--resamples", type=int, default=1000, help="sentence resamples per pipeline study")
    parser.add_argument("--real", type=Path, nargs="+", default=[REAL], help="statistics .npz of real runs")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    started = time.monotonic()
    calibration(args, rng)
    power(args, rng)
    if args.pipeline_studies:
        pipeline(args, rng)
    print(f"\ntook {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
