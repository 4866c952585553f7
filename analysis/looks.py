"""A sequential sweep's looks, replayed from its runs: at each look of the design each arm is
compared with the baseline on its group's primary metric over the seeds that look has (seeds
1..n, paired), and the procedure of :mod:`ablab.analysis.sequential` decides. The driver asks it
which seeds to run next; the report shows each comparison's path. Only the runs are kept: the
same runs give the same looks and decisions, so a resumed sweep takes no extra look."""

from __future__ import annotations

import math
from dataclasses import replace

from ablab.analysis.cells import Number
from ablab.analysis.findings import interval, number
from ablab.analysis.metrics import METRICS
from ablab.analysis.sequential import DECIDED, Design, Look, Path, boundary, replay
from ablab.analysis.stats import format_p
from ablab.analysis.verdicts import ALPHA, CONFOUNDED, DIFFERS, INCONCLUSIVE, Evidence, holm
from ablab.trainer.tracking import record

ENDED = (*record.DONE, record.FAILED)
"""A trial in one of these states has given its seed's look all it will (a killed one is resumed)."""


def sequenced_arms(trials, leads: dict[str, str], crossed: set[str]) -> dict[str, str]:
    """Setting -> its group's primary metric (``leads``), for every arm compared with the baseline
    (the cells of a ``crossed`` group are compared as a design, not sequenced)."""
    return {
        setting: leads[group]
        for setting, groups in zip(trials["setting"], trials["groups"], strict=True)
        for group in groups
        if group in leads and group not in crossed and setting != record.BASELINE
    }


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


def sequential_verdicts(
    verdicts: dict, arms: dict[str, str], paths: list[Path], design: Design, alpha: float = ALPHA
) -> dict:
    """The primary verdicts of a sequential sweep, from its procedure rather than a fixed-seed
    test of data gathered until it decided (which would not hold its level): *differs* where the
    path was decided, else *inconclusive*; p adjusted by Holm over the sequential q's; the interval
    shown the repeated confidence interval of the last look; why the comparison stopped."""
    q = [p.q(design) for p in paths]
    adjusted = dict(zip((p.name for p in paths), holm(q), strict=True))
    out = dict(verdicts)
    for path in paths:
        key = (path.name, arms[path.name])
        v = verdicts.get(key)
        if v is None or v.word == CONFOUNDED or not path.looks:
            continue
        last = path.looks[-1].seeds
        out[key] = replace(
            v,
            word=DIFFERS if path.stopped == DECIDED else INCONCLUSIVE,
            p_adjusted=adjusted[path.name],
            simultaneous_level=1 - alpha / max(v.family, 1) * design.increment(last),
            stopped=f"{path.stopped} at {last} seeds" if path.stopped else _waiting(design, last),
        )
    return out


def _waiting(design: Design, seeds: int) -> str:
    following = next((n for n in design.looks if n > seeds), design.maximum)
    return f"its look at {following} seeds is still to run"


def look_rows(paths: list[Path], arms: dict[str, str], design: Design, alpha: float = ALPHA) -> list[dict]:
    """Each comparison's looks as table rows: seeds, Δ with the look's repeated confidence
    interval, p, the sequential q, and at its last look why it stopped."""
    family = len(paths)
    rows = []
    for path in paths:
        digits = METRICS[arms[path.name]].digits
        for i, look in enumerate(path.looks):
            low, high = boundary(look, design, alpha, family)
            last = i == len(path.looks) - 1
            q = replace(path, looks=path.looks[: i + 1]).q(design)
            rows.append(
                {
                    "arm": path.name if i == 0 else "",
                    "seeds": Number(str(look.seeds)),
                    f"Δ {METRICS[arms[path.name]].label} [repeated interval]": Number(
                        f"{number(look.delta, digits, True)} {interval((low, high), digits)}"
                    ),
                    "p": Number(format_p(look.p, name="")),
                    "sequential q": Number(format_p(q, name="")),
                    "then": (path.stopped or "waiting for seeds") if last else "more seeds",
                }
            )
    return rows
