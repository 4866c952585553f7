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
from collections.abc import Callable
from dataclasses import replace

from ablab.experiments.spec.expand import Plan, Trial, expand
from ablab.trainer.tracking import record

LOOKS_ARTIFACT = "looks.json"


def due_trials(plan: Plan, uri: str) -> tuple[list[Trial], list, int | None]:
    """The trials of every look so far and of the look that is due: the first look's, and for
    each comparison the seeds its last look had (or the waiting look wants), the baseline as many
    as the most; within ``max_runs``. Also the comparisons' paths and the waiting look's seeds."""
    from ablab.analysis.load import NoRuns, load
    from ablab.analysis.looks import arm_paths, sequenced_arms, wanted_trials
    from ablab.analysis.report import crossed_designs, group_leads
    from ablab.analysis.verdicts import gather
    from ablab.experiments.reporting import target_experiment

    try:
        runs = load(uri, plan.experiment)
    except NoRuns:
        return plan.trials, [], plan.spec.design.looks[0]
    found = target_experiment(str(plan.path))  # the report's groups: its replay decides alike
    leads = group_leads(found.groups, found.texts, found.primary_metric)
    arms = sequenced_arms(runs.trials, leads, set(crossed_designs(runs.trials, found.groups, found.texts)))
    paths, waiting = arm_paths(gather(runs, runs.trials), arms, plan.spec.design)
    seeds = {p.name: p.looks[-1].seeds for p in paths if p.looks} | wanted_trials(paths, waiting)
    seeds[record.BASELINE] = max([*seeds.values(), plan.spec.design.initial])
    most = max(seeds.values())
    more = expand(plan.spec.model_copy(update={"seeds": list(range(1, most + 1))}), plan.path)
    trials = {t.hash: t for t in plan.trials}
    for trial in sorted(more.trials, key=lambda t: t.seed):  # the earliest seeds first under a cap
        if trial.seed <= seeds.get(record.setting_of(trial.name), 0):
            trials.setdefault(trial.hash, trial)
    chosen = list(trials.values())
    if plan.spec.max_runs is not None:
        chosen = chosen[: max(plan.spec.max_runs, len(plan.trials))]
    return chosen, paths, waiting


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
        trials, paths, waiting = due_trials(plan, uri)
        if paths:
            stopped = {
                p.name: p.stopped or f"open at {p.looks[-1].seeds if p.looks else 0} seeds" for p in paths
            }
            echo(f"looks: {'; '.join(f'{name} {why}' for name, why in stopped.items())}")
        if summary is not None and summary.parent_run_id and paths:  # the looks the last one led to
            MlflowClient(uri).log_text(
                summary.parent_run_id, json.dumps(look_record(paths, waiting)), LOOKS_ARTIFACT
            )
        hashes = {t.hash for t in trials}
        if done is not None and hashes <= done:
            if waiting is not None:
                echo(f"max_runs ({plan.spec.max_runs}) reached: the comparisons still open stop here")
            return summary
        summary = run(look_plan(plan, trials), resume and done is None)
        if summary.interrupted:
            return summary
        done = hashes
