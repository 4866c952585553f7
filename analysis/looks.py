"""A sequential sweep's looks, replayed from its runs: at each look of the design each arm is
compared with the baseline on its group's primary metric over the seeds that look has (seeds
1..n, paired), and the procedure of :mod:`ablab.analysis.sequential` decides. The driver asks it
which seeds to run next; the report shows each comparison's path. Only the runs are kept: the
same runs give the same looks and decisions, so a resumed sweep takes no extra look."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from ablab.analysis.cells import Number
from ablab.analysis.findings import interval, number
from ablab.analysis.metrics import METRICS
from ablab.analysis.sequential import CUT, DECIDED, WAITING, Design, Look, Path, boundary, replay
from ablab.analysis.stats import format_p
from ablab.analysis.verdicts import ALPHA, CONFOUNDED, DIFFERS, INCONCLUSIVE, Evidence, holm
from ablab.trainer.tracking import record

ENDED = record.DONE
"""A trial in one of these states has given its seed's look all it will: finished, or diverged (a
result: the seed drops out of the pairs, and of the degrees of freedom). A failed or killed one
holds its look until a run of it ends so: ``ablab run`` runs it again, as it does any failed trial,
and a look taken without it would change once it came."""


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
                out[arm] = Look(seeds, 0.0, 0.0, 0.0, pairs=len(c.seeds) if c else 0)  # it stops, unpaired
            else:
                out[arm] = Look(seeds, c.delta, c.seed_var, c.sentence_var, pairs=len(c.seeds))
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
    shown the repeated confidence interval of the last look; why the comparison stopped. A stopped
    arm's seeds beyond its last look were never run, by design: no metric of it lists them as left
    out."""
    q = [p.q(design) for p in paths]
    adjusted = dict(zip((p.name for p in paths), holm(q), strict=True))
    ended = {p.name: p.looks[-1].seeds for p in paths if p.stopped and p.looks}
    out = {
        key: replace(v, left_out=tuple((s, why) for s, why in v.left_out if s <= ended.get(key[0], math.inf)))
        for key, v in verdicts.items()
    }
    for path in paths:
        key = (path.name, arms[path.name])
        v = verdicts.get(key)
        if v is None or v.word == CONFOUNDED or not path.looks:
            continue
        last = path.looks[-1].seeds
        out[key] = replace(
            out[key],
            word=DIFFERS if path.stopped == DECIDED else INCONCLUSIVE,
            p_adjusted=adjusted[path.name],
            simultaneous_level=1 - alpha / max(v.family, 1) * design.increment(last),
            stopped=f"no more seeds: {path.stopped} at {last} seeds"
            if path.stopped
            else _waiting(design, last),
        )
    return out


def _waiting(design: Design, seeds: int) -> str:
    following = next((n for n in design.looks if n > seeds), design.maximum)
    return f"its look at {following} seeds is still to run"


def look_table(paths: list[Path], arms: dict[str, str], design: Design, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per comparison and look: ``arm``, ``metric`` (its key), ``seeds``, ``delta``, ``low``
    and ``high`` (the look's repeated confidence interval), ``p``, ``q`` (the sequential p of the
    looks so far) and ``stopped`` (at its last look: why it stopped, :data:`WAITING` while
    open; else '')."""
    rows = []
    for path in paths:
        for i, look in enumerate(path.looks):
            low, high = boundary(look, design, alpha, len(paths))
            last = i == len(path.looks) - 1
            rows.append(
                {
                    "arm": path.name,
                    "metric": arms[path.name],
                    "seeds": look.seeds,
                    "delta": look.delta,
                    "low": low,
                    "high": high,
                    "p": look.p,
                    "q": replace(path, looks=path.looks[: i + 1]).q(design),
                    "stopped": (path.stopped or WAITING) if last else "",
                }
            )
    return pd.DataFrame(rows)


def look_rows(table: pd.DataFrame) -> list[dict]:
    """:func:`look_table` as the report's table: seeds, Δ with the look's repeated confidence
    interval, p, the sequential q, and at its last look why it stopped."""
    rows, previous = [], None
    for row in table.itertuples(index=False):
        metric = METRICS[row.metric]
        rows.append(
            {
                "arm": row.arm if row.arm != previous else "",
                "seeds": Number(str(row.seeds)),
                f"Δ {metric.label} [repeated interval]": Number(
                    f"{number(row.delta, metric.digits, True)} {interval((row.low, row.high), metric.digits)}"
                ),
                "p": Number(format_p(row.p, name="")),
                "sequential q": Number(format_p(row.q, name="")),
                "then": row.stopped or "more seeds",
            }
        )
        previous = row.arm
    return rows


def sequential_report(
    evidence: Evidence, leads: dict[str, str], crossed: set[str], verdicts: dict, design: Design
) -> tuple[dict, pd.DataFrame]:
    """What a sequential design changes in the report: the primary verdicts decided by the
    procedure (:func:`sequential_verdicts`) and every comparison's looks (:func:`look_table`)."""
    arms = sequenced_arms(evidence.trials, leads, crossed)
    paths, waiting = arm_paths(evidence, arms, design)
    mark_cut(paths, waiting, evidence.trials, design)
    return sequential_verdicts(verdicts, arms, paths, design), look_table(paths, arms, design)


def mark_cut(paths: list[Path], waiting: int | None, trials: pd.DataFrame, design: Design) -> None:
    """Stop as :data:`CUT` each open comparison whose waiting look has no run of its arm while
    the runs have reached the design's ``max_runs``: the sweep launched none for it, and will not."""
    if waiting is None or design.max_runs is None or len(trials) < design.max_runs:
        return
    launched = set(zip(trials["setting"], trials["seed"].astype(int), strict=True))
    for path in paths:
        if path.stopped is None and (path.name, waiting) not in launched:
            path.stopped = CUT
