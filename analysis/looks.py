"""A sequential sweep's looks, replayed from its runs: at each look of the design each arm is
compared with the baseline on its group's primary metric over the seeds that look has (seeds
1..n, paired), and the procedure of :mod:`ablab.analysis.sequential` decides. The driver asks it
which seeds to run next; the report shows each comparison's path. Only the runs are kept: the
same runs give the same looks and decisions, so a resumed sweep takes no extra look."""

from __future__ import annotations

import math
from dataclasses import replace

from ablab.analysis.sequential import Design, Look, Path, replay
from ablab.analysis.verdicts import ALPHA, Evidence
from ablab.trainer.tracking import record

ENDED = (*record.DONE, record.FAILED)
"""A trial in one of these states has given its seed's look all it will (a killed one is resumed)."""


def arm_paths(
    evidence: Evidence, arms: dict[str, str], design: Design, alpha: float = ALPHA
) -> tuple[list[Path], int | None]:
    """Each arm's path (``arms``: setting -> its primary metric), and the seeds of the look still
    waiting for runs (None once every comparison has stopped)."""
    trials = evidence.trials
    ended: dict[str, set[int]] = {}
    for setting, seed, status in zip(trials["setting"], trials["seed"], trials["status"], strict=True):
        if status in ENDED:
            ended.setdefault(setting, set()).add(int(seed))

    def looks_at(seeds: int) -> dict[str, Look]:
        wanted = set(range(1, seeds + 1))
        first = replace(
            evidence,
            runs={
                s: {seed: r for seed, r in by_seed.items() if seed <= seeds}
                for s, by_seed in evidence.runs.items()
            },
        )
        out = {}
        for arm, metric in arms.items():
            if not wanted <= ended.get(arm, set()) or not wanted <= ended.get(record.BASELINE, set()):
                continue
            c = first.contrast(metric, {arm: 1.0}, {record.BASELINE: 1.0})
            if c is None or not math.isfinite(c.delta) or not math.isfinite(c.seed_var):
                out[arm] = Look(seeds, 0.0, 0.0, 0.0)  # no seed pairs: nothing to find, it goes futile
            else:
                out[arm] = Look(seeds, c.delta, c.seed_var, c.sentence_var)
        return out

    return replay(looks_at, list(arms), design, alpha)


def wanted_trials(paths: list[Path], waiting: int | None) -> dict[str, int]:
    """Setting -> the seeds it needs for the waiting look: every open arm that many, and the
    baseline as many as its most demanding arm (a baseline seed serves every arm)."""
    if waiting is None:
        return {}
    open_ = {p.name: waiting for p in paths if p.stopped is None}
    return {**open_, record.BASELINE: waiting} if open_ else {}
