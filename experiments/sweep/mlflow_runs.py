"""The MLflow side of a sweep: one experiment per spec, one parent run per invocation, and
exactly one child run per trial.

The driver creates every child run (status SCHEDULED) before any trial starts and hands each
trial its run id, so a retried, restored or re-run trial reopens its run instead of creating
another; the store and experiment are thus made in one process, never raced by trials.
A trial is done when its run finished (status ``finished`` or ``diverged``); re-running a
spec skips those and reuses the runs of the others (failed, killed, scheduled). After Tune,
:func:`settle` gives each run the outcome its process could not record itself.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ablab.analysis.questions import question
from ablab.experiments.spec.expand import Plan, Trial
from ablab.experiments.sweep.trial import COMPLETE
from ablab.trainer.errors import Unavailable
from ablab.trainer.tracking import record
from ablab.trainer.tracking.outbox import first_line, unreachable
from ablab.trainer.tracking.store import ensure_experiment, git_commit


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def trial_runs(uri: str, experiment_id: str) -> list:
    """Every child (trial) run of the experiment, all pages."""
    return record.search(_client(uri), experiment_id, record.TRIAL_KIND)


def done(uri: str, plan: Plan) -> set[str]:
    """Hashes of the plan's trials whose runs finished (finished, diverged or early stopped)."""
    from mlflow import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name(plan.experiment)
    if experiment is None:
        return set()
    return {
        run.data.tags.get(record.TRIAL_HASH)
        for run in trial_runs(uri, experiment.experiment_id)
        if record.is_done(run)
    }


@dataclass(frozen=True)
class PreparedSweep:
    """A sweep's MLflow side, made ready before Tune starts (what :func:`prepare` returns); the
    report reads the finished runs as :class:`ablab.analysis.load.SweepRuns`."""

    experiment_id: str
    parent_run_id: str
    run_ids: dict[str, str]  # trial hash -> run id, for the trials to run
    skipped: list[Trial]  # trials already done in this experiment


def prepare(
    uri: str,
    plan: Plan,
    force: bool = False,
    parent_run_id: str | None = None,
    planned_seconds: dict[str, float] | None = None,
    clock: Callable[[], float] = time.time,
) -> PreparedSweep:
    """Make the experiment, the parent run and a child run per trial to run; find what is done.
    A new child run carries the plan's estimate of its trial's time (``planned_seconds`` by hash).

    With ``parent_run_id`` (``--resume``) the parent and the unfinished runs are reopened: their
    trials go on from their checkpoints, and the sweep reads as running again, not ended.
    Otherwise an unfinished run from an earlier invocation is deleted and made anew, since its
    trial starts over and would log its early steps twice.
    """
    experiment_id = ensure_experiment(uri, plan.experiment)
    client = _client(uri)
    client.set_experiment_tag(experiment_id, record.NOTE, describe(plan))
    resume = parent_run_id is not None
    if not resume:
        parent_run_id = client.create_run(
            experiment_id,
            run_name=f"sweep {plan.spec.name}",
            tags={
                record.KIND: record.SWEEP_KIND,
                record.SPEC: plan.spec.name,
                record.SPEC_HASH: plan.hash,
                record.SPEC_FILE: plan.path.name,
                record.GIT_COMMIT: git_commit(),
                record.NOTE: describe(plan),
            },
        ).info.run_id
        client.log_text(parent_run_id, plan.path.read_text(), f"spec/{plan.path.name}")
        client.log_dict(parent_run_id, {t.name: t.hash for t in plan.trials}, "spec/trials.json")
    else:
        client.update_run(parent_run_id, status="RUNNING")
        client.set_tag(parent_run_id, record.REOPENED_AT, f"{clock():.3f}")
    existing: dict[str, list] = {}
    for run in trial_runs(uri, experiment_id):
        existing.setdefault(run.data.tags.get(record.TRIAL_HASH), []).append(run)
    skipped, run_ids = [], {}
    if plan.spec.search:  # search trials make their own runs: their configs are sampled
        return PreparedSweep(experiment_id, parent_run_id, run_ids, skipped)
    for trial in plan.trials:
        previous = existing.get(trial.hash, [])
        if not force and any(record.is_done(r) for r in previous):
            skipped.append(trial)
            continue
        tags = {**trial_tags(plan, trial), record.PARENT: parent_run_id}
        if trial.hash in (planned_seconds or {}):
            tags[record.PLANNED_SECONDS] = f"{planned_seconds[trial.hash]:.0f}"
        reopen = [r for r in previous if r.data.tags.get(record.PARENT) == parent_run_id] if resume else []
        if reopen:  # queued again until its trial starts (the trainer marks it running)
            run_ids[trial.hash] = reopen[0].info.run_id
            client.update_run(reopen[0].info.run_id, status="SCHEDULED")
            continue
        for run in previous:
            if not record.is_done(run):
                client.delete_run(run.info.run_id)
        created = client.create_run(experiment_id, run_name=trial.name, tags=tags)
        client.update_run(created.info.run_id, status="SCHEDULED")
        run_ids[trial.hash] = created.info.run_id
    return PreparedSweep(experiment_id, parent_run_id, run_ids, skipped)


def group_question(plan: Plan, group: str) -> str:
    """The group's question: the spec's own, else derived from every key the group varies."""
    ablation = plan.spec.ablations[group]
    return ablation.question or question([f.keys for f in ablation.factors()], group)


def describe(plan: Plan) -> str:
    """What MLflow shows as the experiment's and the sweep's description (Markdown): the spec's
    description, each group's question, and how the report is made (``ablab report`` points it
    at the report once there is one)."""
    seeds = ", ".join(map(str, plan.spec.initial_seeds))
    lines = [plan.spec.description or f"The ablations of spec {plan.spec.name}.", ""]
    lines += [f"- **{group}**: {group_question(plan, group)}" for group in plan.spec.ablations]
    lines += [
        "",
        f"{len(plan.trials)} trials (seeds {seeds}) against one baseline.",
        f"The comparison report: `ablab report {plan.path}` writes it and logs it to the sweep run.",
    ]
    return "\n".join(lines)


def trial_tags(plan: Plan, trial: Trial) -> dict[str, str]:
    changes = ", ".join(f"`{k}` = {v}" for k, v in trial.overrides.items() if k != "train.seed")
    note = f"Trial `{trial.name}` of spec {plan.spec.name}: " + (
        f"{changes} against the baseline." if changes else f"the baseline, seed {trial.seed}."
    )
    return {
        record.KIND: record.TRIAL_KIND,
        record.SPEC: plan.spec.name,
        record.SPEC_HASH: plan.hash,
        record.GIT_COMMIT: git_commit(),
        record.NOTE: note,
        **trial.tags(),
        **({record.LOOK: str(look_of(plan, trial.seed))} if plan.spec.design else {}),
    }


def look_of(plan: Plan, seed: int) -> int:
    """The look (from 1) of a sequential design whose seeds first include ``seed``."""
    return next(j for j, seeds in enumerate(plan.spec.design.looks, 1) if seed <= seeds)


def outcome(uri: str, run_ids: list[str]) -> dict[str, dict]:
    """Status and headline metrics of the given trial runs, by trial name."""
    client, out = _client(uri), {}
    for run_id in run_ids:
        run = client.get_run(run_id)
        final = record.summary(run.data.metrics, run.data.tags.get(record.TEST_SET))
        out[run.data.tags.get(record.TRIAL, run.info.run_name)] = {
            "run_id": run_id,
            "status": record.status(run),
            "bleu": final.get("bleu"),
            "error": run.data.tags.get(record.ERROR),
        }
    return out


def end_parent(uri: str, parent_run_id: str, status: str, summary: dict) -> None:
    client = _client(uri)
    client.log_text(parent_run_id, json.dumps(summary, indent=1), "sweep_summary.json")
    client.set_terminated(parent_run_id, status=status)


@contextlib.contextmanager
def store_answers(uri: str, then: str):
    """Turn "the tracking store does not answer" into a clear error that says ``then``."""
    try:
        yield
    except Exception as exc:
        if not unreachable(exc):
            raise
        raise Unavailable(
            f"the MLflow tracking store {uri} does not answer ({first_line(exc)}); {then}"
        ) from None


SETTLE_SECONDS = 30.0
"""How long, after a sweep, its runs get to close themselves before the driver closes them."""


def settled(client, run_id: str, deadline: float):
    """The run once its process stopped writing to it: a stopped trial may still be closing its
    run (as killed) when Tune returns; a hard-killed one never does, hence the deadline (one
    for all runs of a sweep: a stopped sweep has many such runs)."""
    run = client.get_run(run_id)
    while run.info.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
        run = client.get_run(run_id)
    return run


def mark(client, run_id: str, outcome: str, error: str | None = None) -> None:
    """Close a run its own process could not close (killed for good, stopped by a scheduler)."""
    tags = {record.STATUS: outcome} | ({record.ERROR: str(error)[:1000]} if error else {})
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, record.MLFLOW_STATUS[outcome])


def settle(uri: str, results, interrupted: bool = False, expected: list[str] = ()) -> list[str]:
    """Give each run the outcome its process could not record itself; returns the run ids.

    A process killed for good leaves its run RUNNING: it failed. A trial that ended without
    error and without its final report was killed by the sweep's stop (Ctrl-C; ``--resume``
    continues it) if the sweep was interrupted, else stopped early by the scheduler (ASHA).
    A run in ``expected`` (the driver made it) that no result names belongs to a trial whose
    worker died before Tune could record anything (e.g. killed for memory while starting): it
    failed, unless the sweep was interrupted.
    """
    from mlflow import MlflowClient

    found: dict[str, Any] = {}
    for result in results:
        metrics = result.metrics or {}
        run_id = metrics.get("mlflow_run_id") or ((result.config or {}).get("trial") or {}).get("run_id")
        if run_id:
            found[run_id] = result
    for run_id in expected:
        found.setdefault(run_id, None)
    client, deadline = MlflowClient(uri), time.monotonic() + SETTLE_SECONDS
    for run_id, result in found.items():
        run = settled(client, run_id, deadline)
        if record.is_done(run) or run.info.status == "FAILED":
            continue
        if result is None and interrupted:
            error = None
        elif result is None:
            error = "the trial's worker died before it reported a result (see Tune's log of the sweep)"
        else:
            error = result.error
        if error is not None:
            mark(client, run_id, record.FAILED, error)
        elif run.info.status != "SCHEDULED" and not (result and (result.metrics or {}).get(COMPLETE)):
            # started (a SCHEDULED run never did) and stopped before its final report
            mark(client, run_id, record.KILLED if interrupted else record.EARLY_STOPPED)
    return list(found)
