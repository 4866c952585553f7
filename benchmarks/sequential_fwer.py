"""Seeds spent where a decision is pending: does the sequential design hold its error rate, and
what does it save? Studies drawn with seeds nested across looks and the baseline's seeds shared
by every arm (:func:`ablab.analysis.replica.draw_sequential`), run through the design's own
procedure (:func:`ablab.analysis.sequential.simulate`). Printed:

1. **Family-wise error rate** with every null true, for 1, 6 and 12 comparisons and the seeds'
   share of Var(Δ̂) at the first look from 0.05 to 0.99, with futility on (as ablab runs it) and
   off (the bound futility cannot exceed), against α = 0.05 and its 95 % Monte Carlo band.
2. **Decisions and runs** of 12 comparisons, half null and half with a true effect of 2, 3 or 4
   SE (SE at the first look), against (a) fixed ``initial`` seeds and (b) fixed ``max`` seeds (or
   ``--against`` seeds) for every arm: the share of real effects decided, false decisions, and
   the mean runs (every arm's seeds and the baseline's).
3. **Shaped like a real sweep** (``--like``, a runs export such as ``results/suite_cpu/runs``):
   each arm's BLEU comparison with the baseline as the sweep measured it taken as the truth (Δ,
   the variance of its paired seed differences, its test-set variance), the same against the three
   designs; then every Δ set to 0, the family-wise error rate at that shape.

    python benchmarks/sequential_fwer.py                  # about a minute on 2 cores
    python benchmarks/sequential_fwer.py --studies 20000  # a tighter band
    python benchmarks/sequential_fwer.py --like results/suite_cpu/runs
    python benchmarks/sequential_fwer.py --futility 0.05 --spending 8   # another point of the design
    python benchmarks/sequential_fwer.py --max 12 --against 10          # seeds 3 to 12 against 10 fixed
    python benchmarks/sequential_fwer.py --like results/suite_cpu/runs --max-runs 70   # a capped design

With ``--max-runs`` the design launches a look as the sweep does under a spec's ``max_runs``: the
baseline's new seeds and each open comparison's, in order, while they fit; a comparison left out
stops (``max_runs reached``), and every section counts the runs within the cap.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ablab.analysis import export, replica
from ablab.analysis import sequential as seq
from ablab.analysis.bootstrap import seed_test
from ablab.analysis.looks import sequenced_arms
from ablab.analysis.report import crossed_designs
from ablab.analysis.verdicts import gather
from ablab.trainer.tracking.record import BASELINE

ALPHA = 0.05
SHARES = (0.05, 0.3, 0.6, 0.9, 0.99)


def fixed(studies: replica.SequentialStudies, seeds: int, alpha: float) -> np.ndarray:
    """Holm over the family's p-values at ``seeds`` (one of the drawn looks): a fixed design of
    that many seeds."""
    j = studies.seeds.index(seeds)
    p = seed_test(studies.delta[..., j], studies.v_seed[..., j], studies.v_sent, seeds)[1]
    return seq.holm_rejects(p, alpha)


def run_design(studies: replica.SequentialStudies, design: seq.Design, alpha: float) -> seq.Outcome:
    """The design on studies drawn at its looks and perhaps more seeds (a fixed design's)."""
    at = [studies.seeds.index(n) for n in design.looks]
    return seq.simulate(studies.delta[..., at], studies.v_seed[..., at], studies.v_sent, design, alpha)


def drawn_seeds(design: seq.Design, against: int) -> list[int]:
    """The seeds studies are seen at: the design's looks and the fixed design compared with."""
    return sorted({*design.looks, against})


def error_rates(design: seq.Design, studies: int, rng: np.random.Generator) -> None:
    band = 1.96 * np.sqrt(ALPHA * (1 - ALPHA) / studies)
    print(f"\n1. Family-wise error rate, every null true ({studies:,} studies a cell; α = {ALPHA},")
    print(f"   95 % Monte Carlo band ±{band:.3f}); futility on / off")
    print("   comparisons | " + " | ".join(f"share {s:<4}" for s in SHARES))
    futility = seq.FUTILITY_POWER
    for k in (1, 6, 12):
        cells = []
        for share in SHARES:
            drawn = replica.draw_sequential(design.looks, np.zeros(k), share, studies, rng)
            rates = []
            for power in (futility, 0.0):
                seq.FUTILITY_POWER = power
                outcome = seq.simulate(drawn.delta, drawn.v_seed, drawn.v_sent, design, ALPHA)
                rates.append(outcome.rejected.any(-1).mean())
            seq.FUTILITY_POWER = futility
            cells.append(f"{rates[0]:.3f}/{rates[1]:.3f}")
        print(f"   {k:>11} | " + " | ".join(f"{c:<10}" for c in cells))


def savings(design: seq.Design, against: int, studies: int, rng: np.random.Generator) -> None:
    k = 12
    most = k * against + against
    first = k * design.initial + design.initial
    print(f"\n2. Decisions and runs: {k} comparisons, 6 null and 6 real; {studies:,} studies a row")
    print(f"   fixed {design.initial} seeds: {first} runs; fixed {against} seeds: {most} runs")
    print(f"   effect  share | real decided: seq / fixed {design.initial} / fixed {against}"
          "     | false (any) seq | runs seq")  # fmt: skip
    for effect in (2.0, 3.0, 4.0):
        for share in (0.3, 0.7, 0.95):
            effects = np.array([0.0] * 6 + [effect] * 6)
            drawn = replica.draw_sequential(drawn_seeds(design, against), effects, share, studies, rng)
            outcome = run_design(drawn, design, ALPHA)
            real = effects > 0
            at_first, at_most = fixed(drawn, design.initial, ALPHA), fixed(drawn, against, ALPHA)
            runs = outcome.runs.mean()
            print(
                f"   {effect:>4.1f} SE {share:>5} | {outcome.rejected[:, real].mean():.2f} / "
                f"{at_first[:, real].mean():.2f} / {at_most[:, real].mean():.2f}"
                f"{'':>18}| {outcome.rejected[:, ~real].any(-1).mean():.3f}"
                f"{'':>11}| {runs:.0f} ({runs / most:.0%} of fixed {against})"
            )


def measured_shape(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int]:
    """Each arm's BLEU comparison with the baseline in a runs export: names, Δ, σ (the sd of the
    paired seed differences), τ (the test set's SE of Δ), and the seeds compared."""
    runs = export.read(folder)
    trials = runs.trials
    groups = list(dict.fromkeys(g for gs in trials["groups"] for g in gs if g != BASELINE))
    arms = sequenced_arms(trials, dict.fromkeys(groups, "bleu"), set(crossed_designs(trials, groups, {})))
    evidence = gather(runs, trials)
    names, rows = [], []
    for arm in arms:
        c = evidence.contrast("bleu", {arm: 1.0}, {BASELINE: 1.0})
        if c is not None and len(c.seeds) >= 2:
            names.append(arm)
            rows.append((c.delta, np.sqrt(c.seed_var * len(c.seeds)), np.sqrt(c.sentence_var), len(c.seeds)))
    if not rows:
        raise SystemExit(f"{folder}: no arm compared with the baseline over 2 or more paired seeds")
    delta, sigma, tau, seeds = (np.array(column) for column in zip(*rows, strict=True))
    return names, delta, sigma, tau, int(seeds.min())


def shaped(folder: Path, design: seq.Design, against: int, studies: int, rng: np.random.Generator) -> None:
    names, delta, sigma, tau, measured = measured_shape(folder)
    k = len(names)
    most = k * against + against
    print(
        f"\n3. Shaped like {folder} ({k} BLEU comparisons measured at {measured} seeds; {studies:,} studies)"
    )
    drawn = replica.draw_nested(drawn_seeds(design, against), delta, sigma, tau, studies, rng)
    outcome = run_design(drawn, design, ALPHA)
    at_first, at_most = fixed(drawn, design.initial, ALPHA), fixed(drawn, against, ALPHA)
    print(
        "   arm                  Δ BLEU  sd(d)  SE test | decided: seq / fixed first / fixed max | seeds seq"
    )
    for i, name in enumerate(names):
        decided = (
            f"{outcome.rejected[:, i].mean():.2f} / {at_first[:, i].mean():.2f} / {at_most[:, i].mean():.2f}"
        )
        print(
            f"   {name:<20} {delta[i]:>+6.2f} {sigma[i]:>6.2f} {tau[i]:>8.2f} | {decided:<39}"
            f"| {outcome.seeds[:, i].mean():.1f}"
        )
    runs, first = outcome.runs.mean(), k * design.initial + design.initial
    counts = [outcome.rejected.sum(-1).mean(), at_first.sum(-1).mean(), at_most.sum(-1).mean()]
    print(
        f"   decided per study: seq {counts[0]:.1f} / fixed {design.initial} {counts[1]:.1f} / fixed "
        f"{against} {counts[2]:.1f} of {k}; runs: seq {runs:.0f} ({runs / most:.0%} of fixed "
        f"{against}'s {most}), fixed {design.initial} {first}"
    )
    why = {
        reason: (outcome.stopped == reason).sum(-1).mean()
        for reason in (seq.DECIDED, seq.FUTILE, seq.CAP, seq.CUT)
    }
    print("   stopped per study: " + ", ".join(f"{reason} {n:.1f}" for reason, n in why.items()))
    null = replica.draw_nested(design.looks, np.zeros(k), sigma, tau, studies, rng)
    fwer = seq.simulate(null.delta, null.v_seed, null.v_sent, design, ALPHA).rejected.any(-1).mean()
    band = 1.96 * np.sqrt(ALPHA * (1 - ALPHA) / studies)
    print(f"   every Δ set to 0: family-wise error rate {fwer:.3f} (α = {ALPHA}, ±{band:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--initial", type=int, default=3)
    parser.add_argument("--max", type=int, default=10)
    parser.add_argument("--step", type=int, default=2)
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--like", type=Path, help="a runs export whose BLEU comparisons shape section 3")
    parser.add_argument(
        "--futility", type=float, default=seq.FUTILITY_POWER, help="futile below this power at max seeds"
    )
    parser.add_argument("--spending", type=float, default=seq.SPENDING_EXPONENT, help="the ρ of t^ρ")
    parser.add_argument(
        "--against", type=int, help="the seeds of the fixed design compared with (default: --max)"
    )
    parser.add_argument("--max-runs", type=int, help="the design's cap on runs (a spec's max_runs)")
    args = parser.parse_args()
    seq.FUTILITY_POWER, seq.SPENDING_EXPONENT = args.futility, args.spending  # what ablab runs, unless asked
    design = seq.Design(args.initial, args.max, args.step, args.max_runs)
    started = time.perf_counter()
    cap = f", at most {design.max_runs} runs" if design.max_runs else ""
    print(f"Design: seeds {design.looks}{cap} (spending t^{seq.SPENDING_EXPONENT:g}, futile below "
          f"{seq.FUTILITY_POWER:.0%} power at {design.maximum} seeds)")  # fmt: skip
    rng = np.random.default_rng(20261206)
    against = args.against or design.maximum
    error_rates(design, args.studies, rng)
    savings(design, against, args.studies // 2, rng)
    if args.like:
        shaped(args.like, design, against, args.studies, rng)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
