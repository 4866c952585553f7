"""Seeds spent where a decision is pending: does the sequential design hold its error rate, and
what does it save? Studies drawn with seeds nested across looks and the baseline's seeds shared
by every arm (:func:`ablab.analysis.replica.draw_sequential`), run through the design's own
procedure (:func:`ablab.analysis.sequential.simulate`). Printed:

1. **Family-wise error rate** with every null true, for 1, 6 and 12 comparisons and the seeds'
   share of Var(Δ̂) at the first look from 0.05 to 0.99, with futility on (as ablab runs it) and
   off (the bound futility cannot exceed), against α = 0.05 and its 95 % Monte Carlo band.
2. **Decisions and runs** of 12 comparisons, half null and half with a true effect of 2, 3 or 4
   SE (SE at the first look), against (a) fixed ``initial`` seeds and (b) fixed ``max`` seeds for
   every arm: the share of real effects decided, false decisions, and the mean runs (every arm's
   seeds and the baseline's).

    python benchmarks/sequential_fwer.py                  # about a minute on 2 cores
    python benchmarks/sequential_fwer.py --studies 20000  # a tighter band
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ablab.analysis import replica
from ablab.analysis import sequential as seq
from ablab.analysis.bootstrap import seed_test

ALPHA = 0.05
SHARES = (0.05, 0.3, 0.6, 0.9, 0.99)


def fixed(studies: replica.SequentialStudies, look: int, alpha: float) -> np.ndarray:
    """Holm over the family's p-values at one look: a fixed design of that many seeds."""
    p = seed_test(studies.delta[..., look], studies.v_seed[..., look], studies.v_sent, studies.seeds[look])[1]
    return seq.holm_rejects(p, alpha)


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


def savings(design: seq.Design, studies: int, rng: np.random.Generator) -> None:
    k = 12
    most = k * design.maximum + design.maximum
    first = k * design.initial + design.initial
    print(f"\n2. Decisions and runs: {k} comparisons, 6 null and 6 real; {studies:,} studies a row")
    print(f"   fixed {design.initial} seeds: {first} runs; fixed {design.maximum} seeds: {most} runs")
    print("   effect  share | real decided: seq / fixed initial / fixed max | false (any) seq | runs seq")
    for effect in (2.0, 3.0, 4.0):
        for share in (0.3, 0.7, 0.95):
            effects = np.array([0.0] * 6 + [effect] * 6)
            drawn = replica.draw_sequential(design.looks, effects, share, studies, rng)
            outcome = seq.simulate(drawn.delta, drawn.v_seed, drawn.v_sent, design, ALPHA)
            real = effects > 0
            at_first, at_most = fixed(drawn, 0, ALPHA), fixed(drawn, len(design.looks) - 1, ALPHA)
            runs = outcome.runs.mean()
            print(
                f"   {effect:>4.1f} SE {share:>5} | {outcome.rejected[:, real].mean():.2f} / "
                f"{at_first[:, real].mean():.2f} / {at_most[:, real].mean():.2f}"
                f"{'':>18}| {outcome.rejected[:, ~real].any(-1).mean():.3f}"
                f"{'':>11}| {runs:.0f} ({runs / most:.0%} of fixed {design.maximum})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--initial", type=int, default=3)
    parser.add_argument("--max", type=int, default=10)
    parser.add_argument("--step", type=int, default=2)
    parser.add_argument("--studies", type=int, default=4000)
    args = parser.parse_args()
    design = seq.Design(args.initial, args.max, args.step)
    started = time.perf_counter()
    print(f"Design: seeds {design.looks} (spending t^{seq.SPENDING_EXPONENT:g}, futility below "
          f"{seq.FUTILITY_POWER:.0%} conditional power)")  # fmt: skip
    rng = np.random.default_rng(20261206)
    error_rates(design, args.studies, rng)
    savings(design, args.studies // 2, rng)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
