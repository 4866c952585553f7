"""The MLflow side of a sweep: one experiment per spec, one parent run per invocation, and
exactly one child run per trial.

The driver creates every child run (status SCHEDULED) before any trial starts and hands each
trial its run id, so a retried, restored or re-run trial reopens its run instead of creating
another; the store and experiment are thus made in one process, never raced by trials.
A trial is done when its run finished (status ``finished`` or ``diverged``); re-running a
spec skips those and reuses the runs of the others (failed, killed, scheduled).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from experiments.spec import Plan, Trial
from trainer.tracking import ensure_experiment, git_commit

DONE = ("finished", "diverged", "early_stopped")


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def trial_runs(uri: str, experiment_id: str) -> list:
    """Every child (trial) run of the experiment, all pages."""
    client, runs, token = _client(uri), [], None
    while True:
        page = client.search_runs(
            [experiment_id], "tags.`ablab.kind` = 'trial'", max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def done(uri: str, plan: Plan) -> set[str]:
    """Hashes of the plan's trials whose runs finished (finished, diverged or early stopped)."""
    from mlflow import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name(plan.experiment)
    if experiment is None:
        return set()
    return {
        run.data.tags.get("ablab.trial_hash")
        for run in trial_runs(uri, experiment.experiment_id)
        if run.data.tags.get("ablab.status") in DONE
    }


@dataclass(frozen=True)
class SweepRuns:
    experiment_id: str
    parent_run_id: str
    run_ids: dict[str, str]  # trial hash -> run id, for the trials to run
    skipped: list[Trial]  # trials already done in this experiment


def prepare(uri: str, plan: Plan, force: bool = False, parent_run_id: str | None = None) -> SweepRuns:
    """Make the experiment, the parent run and a child run per trial to run; find what is done.

    With ``parent_run_id`` (``--resume``) the unfinished runs are reopened: their trials go on
    from their checkpoints. Otherwise an unfinished run from an earlier invocation is deleted
    and made anew, since its trial starts over and would log its early steps twice.
    """
    experiment_id = ensure_experiment(uri, plan.experiment)
    client = _client(uri)
    resume = parent_run_id is not None
    if not resume:
        parent_run_id = client.create_run(
            experiment_id,
            run_name=f"sweep {plan.spec.name}",
            tags={
                "ablab.kind": "sweep",
                "ablab.spec": plan.spec.name,
                "ablab.spec_hash": plan.hash,
                "ablab.git_commit": git_commit(),
            },
        ).info.run_id
        client.log_text(parent_run_id, plan.path.read_text(), f"spec/{plan.path.name}")
        client.log_dict(parent_run_id, {t.name: t.hash for t in plan.trials}, "spec/trials.json")
    existing: dict[str, list] = {}
    for run in trial_runs(uri, experiment_id):
        existing.setdefault(run.data.tags.get("ablab.trial_hash"), []).append(run)
    skipped, run_ids = [], {}
    if plan.spec.search:  # search trials make their own runs: their configs are sampled
        return SweepRuns(experiment_id, parent_run_id, run_ids, skipped)
    for trial in plan.trials:
        previous = existing.get(trial.hash, [])
        if not force and any(r.data.tags.get("ablab.status") in DONE for r in previous):
            skipped.append(trial)
            continue
        tags = {**trial_tags(plan, trial), "mlflow.parentRunId": parent_run_id}
        reopen = (
            [r for r in previous if r.data.tags.get("mlflow.parentRunId") == parent_run_id] if resume else []
        )
        if reopen:
            run_ids[trial.hash] = reopen[0].info.run_id
            continue
        for run in previous:
            if run.data.tags.get("ablab.status") not in DONE:
                client.delete_run(run.info.run_id)
        created = client.create_run(experiment_id, run_name=trial.name, tags=tags)
        client.update_run(created.info.run_id, status="SCHEDULED")
        run_ids[trial.hash] = created.info.run_id
    return SweepRuns(experiment_id, parent_run_id, run_ids, skipped)


def trial_tags(plan: Plan, trial: Trial) -> dict[str, str]:
    return {
        "ablab.kind": "trial",
        "ablab.spec": plan.spec.name,
        "ablab.spec_hash": plan.hash,
        "ablab.git_commit": git_commit(),
        **trial.tags(),
    }


def outcome(uri: str, run_ids: list[str]) -> dict[str, dict]:
    """Status and headline metrics of the given trial runs, by trial name."""
    client, out = _client(uri), {}
    for run_id in run_ids:
        run = client.get_run(run_id)
        out[run.data.tags.get("ablab.trial", run.info.run_name)] = {
            "run_id": run_id,
            "status": run.data.tags.get("ablab.status", run.info.status.lower()),
            "bleu": run.data.metrics.get("bleu"),
            "error": run.data.tags.get("ablab.error"),
        }
    return out


def end_parent(uri: str, parent_run_id: str, status: str, summary: dict) -> None:
    client = _client(uri)
    client.log_text(parent_run_id, json.dumps(summary, indent=1), "sweep_summary.json")
    client.set_terminated(parent_run_id, status=status)
