"""A sequential design's sweep (a spec's ``seeds: {initial, max, step}``): run the look that is
due, replay every look from the runs (:mod:`ablab.analysis.looks`), and run the seeds the next
look needs, until every comparison has stopped (decided, futile, or at its most seeds) or the
spec's ``max_runs`` is reached.

The looks are a function of the finished runs, so nothing else is kept: ``--resume`` after a
crash finds the same look due (an interrupted trial has not ended, so its look still waits) and
runs it under the same plan hash; a second ``ablab run`` of a decided spec finds nothing due and
launches nothing. Each look is one sweep of :func:`ablab.experiments.sweep.driver.run_sweep`
(finished trials are skipped); its parent run gets the looks so far as ``looks.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ablab.experiments.spec.expand import Plan, Trial, expand
from ablab.trainer.tracking import record

LOOKS_ARTIFACT = "looks.json"


@dataclass(frozen=True)
class Due:
    """What a sequential sweep stands at: the trials of every look so far and of the look that is
    due (``trials``), each comparison's path, the seeds of the look waiting for runs (None once
    every comparison has stopped), and the trials that failed and hold their look."""

    trials: list[Trial]
    paths: list
    waiting: int | None
    failed: list[str]


def due_trials(plan: Plan, uri: str) -> Due:
    """The first look's trials, then each comparison's seeds up to its last look; then for the
    look that is due, within ``max_runs``, the baseline's new seeds (a baseline seed serves every
    arm), then each open arm's in the spec's order, an arm's all or none: a look that ``max_runs`` cuts
    short is had by the arms whose seeds fit, and launches no run for the others."""
    from ablab.analysis.load import NoRuns, load
    from ablab.analysis.looks import arm_paths, sequenced_arms, wanted_trials
    from ablab.analysis.report import crossed_designs, group_leads
    from ablab.analysis.verdicts import gather
    from ablab.experiments.reporting import target_experiment

    design = plan.spec.design
    try:
        runs = load(uri, plan.experiment)
    except NoRuns:
        return Due(plan.trials, [], design.looks[0], [])
    found = target_experiment(str(plan.path))  # the report's groups: its replay decides alike
    leads = group_leads(found.groups, found.texts, found.primary_metric)
    arms = sequenced_arms(runs.trials, leads, set(crossed_designs(runs.trials, found.groups, found.texts)))
    paths, waiting = arm_paths(gather(runs, runs.trials), arms, design)
    had = {p.name: p.looks[-1].seeds for p in paths if p.looks}
    had[record.BASELINE] = max([*had.values(), design.initial])
    wanted = wanted_trials(paths, waiting)
    most = max([*had.values(), *wanted.values()])
    more = expand(plan.spec.model_copy(update={"seeds": list(range(1, most + 1))}), plan.path)
    chosen = {t.hash: t for t in plan.trials}
    for trial in more.trials:
        if trial.seed <= had.get(record.setting_of(trial.name), 0):
            chosen.setdefault(trial.hash, trial)
    order = list(dict.fromkeys(record.setting_of(t.name) for t in plan.trials))  # the spec's
    blocks: dict[str, list[Trial]] = {name: [] for name in sorted(wanted, key=order.index)}
    for trial in more.trials:
        name = record.setting_of(trial.name)
        if name in wanted and had.get(name, 0) < trial.seed <= wanted[name] and trial.hash not in chosen:
            blocks[name].append(trial)
    base, arm_blocks = blocks.pop(record.BASELINE, []), list(blocks.values())
    room = math.inf if design.max_runs is None else max(design.max_runs, len(plan.trials)) - len(chosen)
    fitting = []
    for block in arm_blocks:
        if len(base) + sum(map(len, fitting)) + len(block) <= room:
            fitting.append(block)
    for block in [base, *fitting] if fitting else []:  # the baseline's seeds only with an arm's
        chosen.update((t.hash, t) for t in block)
    statuses = dict(zip(runs.trials["trial"], runs.trials["status"], strict=True))
    failed = [t.name for t in chosen.values() if statuses.get(t.name) == record.FAILED]
    return Due(list(chosen.values()), paths, waiting, failed)


def look_plan(plan: Plan, trials: list[Trial]) -> Plan:
    """The plan of one look: the spec's, with these trials (its hash from theirs)."""
    digest = hashlib.sha256(json.dumps([plan.spec.name, *sorted(t.hash for t in trials)]).encode())
    return replace(plan, trials=trials, hash=digest.hexdigest()[:16])


def look_record(paths: list, waiting: int | None) -> dict:
    """What the parent run keeps of the looks: each comparison's looks (seeds, Δ, SE, p) and why
    it stopped, and the look still waiting for runs."""
    return {
        "waiting": waiting,
        "comparisons": [
            {
                "arm": p.name,
                "stopped": p.stopped,
                "looks": [{"seeds": k.seeds, "delta": k.delta, "se": k.se, "p": k.p} for k in p.looks],
            }
            for p in paths
        ],
    }


def run_looks(plan: Plan, run: Callable[[Plan, bool], object], uri: str, resume: bool, echo) -> object:
    """Run look after look (``run(plan, resume)`` runs one look's trials, as ``ablab run`` does
    a fixed spec) until a look brings no new trial; returns the last look's summary."""
    from mlflow import MlflowClient

    done: set[str] | None = None
    summary = None
    while True:
        due = due_trials(plan, uri)
        if due.paths:
            stopped = {
                p.name: p.stopped or f"open at {p.looks[-1].seeds if p.looks else 0} seeds" for p in due.paths
            }
            echo(f"looks: {'; '.join(f'{name} {why}' for name, why in stopped.items())}")
        if summary is not None and summary.parent_run_id and due.paths:  # the looks the last one led to
            MlflowClient(uri).log_text(
                summary.parent_run_id, json.dumps(look_record(due.paths, due.waiting)), LOOKS_ARTIFACT
            )
        hashes = {t.hash for t in due.trials}
        if done is not None and hashes <= done:
            if due.failed:
                echo(
                    f"the look at {due.waiting} seeds waits for {len(due.failed)} failed trial"
                    f"{'s' if len(due.failed) > 1 else ''} ({', '.join(due.failed)}): see why (ablab status "
                    "SPEC, or the run's ablab.error tag), fix it and run the spec again"
                )
            elif due.waiting is not None:
                echo(f"max_runs ({plan.spec.max_runs}) reached: the comparisons still open stop here")
            return summary
        summary = run(look_plan(plan, due.trials), resume and done is None)
        if summary.interrupted:
            return summary
        done = hashes
