"""``ablab run``: a spec's trials through Ray Tune, every trial one MLflow run.

Order of work, so that what can be refused is refused before anything starts: the data is
found (or downloaded), the trials' resources are checked against this machine (or, with an
address, against the cluster), the MLflow store, experiment, parent run and one child run per
trial are made in this process, and only then does Tune start the trials. Tune retries a
failing trial from its last checkpoint up to ``retries`` times; a diverged trial is a result
and is not retried. ``--resume`` restores the Tune state of an interrupted sweep; a plain
re-run skips every trial whose run finished and runs the rest from the start.

This module is the order of work; where trials run is :mod:`~ablab.experiments.sweep.ray_cluster`, how
Tune runs them :mod:`~ablab.experiments.sweep.tune_runs`, their MLflow runs
:mod:`~ablab.experiments.sweep.mlflow_runs`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ablab.experiments.planning.cost import Estimate, estimate, lanes, search_runs, sweep_seconds
from ablab.experiments.spec.expand import Plan
from ablab.experiments.sweep import mlflow_runs, ray_cluster, tune_runs
from ablab.experiments.sweep.progress import SweepProgress, SweepWatch
from ablab.trainer.disk import check_store_writable, check_writable
from ablab.trainer.errors import DataError, UserError
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import absolute_uri

STATE_FILE = "ablab_sweep.json"


@dataclass
class Summary:
    parent_run_id: str | None
    skipped: list[str] = field(default_factory=list)
    trials: dict[str, dict] = field(default_factory=dict)  # name -> status, bleu, run_id, error
    interrupted: bool = False  # stopped by Ctrl-C: --resume continues it
    seconds: dict[str, float] = field(default_factory=dict)  # phase of the sweep -> wall time

    @property
    def failed(self) -> list[str]:
        return [name for name, t in self.trials.items() if t["status"] not in record.DONE]


def run_sweep(
    plan: Plan,
    *,
    storage: Path,
    tracking_uri: str,
    address: str | None = None,
    resume: bool = False,
    force: bool = False,
    tflops: float | None = None,
    echo: Callable[[str], None] = print,
    status_every: float | None = 30.0,
    live: bool = False,
) -> Summary:
    """Run the trials of ``plan`` that are not done yet; returns what each trial ended as.
    Each trial's training rate is planned on this machine (or is ``tflops``): a trial far
    slower than that says so (:mod:`ablab.experiments.sweep.pace`). Every ``status_every``
    seconds the running trials' progress and the time left are shown (:class:`SweepWatch`;
    ``live``: redrawn in place on a terminal; None: not at all)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    import ray

    uri = absolute_uri(tracking_uri)
    phases = Phases()
    sweep_dir = storage.resolve() / plan.spec.name  # this spec's Tune state, and nothing else
    previous = _preflight(plan, uri, sweep_dir, storage, resume)
    trials = plan.trials
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:  # checked before anything is created; a cluster is checked once joined
        ray_cluster.refuse_local_resources(plan)
    finished = set()
    if not force and not plan.spec.search and not resume:
        finished = mlflow_runs.done(uri, plan)
        if all(t.hash in finished for t in trials):
            echo(f"nothing to run: all {len(trials)} trials of {plan.spec.name} have finished runs")
            return Summary(None, skipped=[t.name for t in trials], seconds=phases.end("checks"))
    planned = _planned(plan, [t for t in trials if t.hash not in finished], tflops, echo)
    # Tune saves its experiment state at most every 10 s by default; a restore after the driver
    # died only knows that state. Save more often (trials also check MLflow before running).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    phases.end("checks")
    env = ray_cluster.worker_env()
    ray_cluster.start_ray(plan, address, uri, env)
    phases.end("ray_start")
    try:
        with mlflow_runs.store_answers(
            uri, "nothing was started; start it (or fix --tracking-uri) and run again."
        ):
            sweep = mlflow_runs.prepare(
                uri,
                plan,
                force=force,
                parent_run_id=previous["parent_run_id"] if resume else None,
                planned_seconds={h: e.seconds for h, e in planned.items() if e.seconds is not None},
            )
        phases.end("mlflow_prepare")
        todo = [t for t in trials if t.hash in sweep.run_ids] if not plan.spec.search else trials
        summary = Summary(sweep.parent_run_id, skipped=[t.name for t in sweep.skipped])
        if not resume and sweep_dir.exists():
            shutil.rmtree(sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = {"spec_hash": plan.hash, "parent_run_id": sweep.parent_run_id}
        (sweep_dir / STATE_FILE).write_text(json.dumps(state))
        results = []
        if todo:
            count = search_runs(plan)[0] if plan.spec.search else len(todo)
            runs_text = f" ({count} runs with the search)" if plan.spec.search else ""
            echo(
                f"{plan.spec.name}: {len(todo)} trials to run{runs_text}, {len(sweep.skipped)} already done; "
                f"MLflow experiment {plan.experiment}, parent run {sweep.parent_run_id}"
            )
            payloads = [
                tune_runs.payload(plan, t, uri, sweep, sweep_dir, _rate(planned, t.hash)) for t in todo
            ]
            watch = SweepWatch(
                uri, plan.experiment, sweep.parent_run_id, lanes(plan), echo, status_every, live
            )
            progress = SweepProgress(count, plan.spec.metric, plan.spec.mode, watch.say)

            def restart() -> None:
                ray.shutdown()  # every worker of the stopped controller goes with it
                ray_cluster.start_ray(plan, address, uri, env)

            with watch:
                results, summary.interrupted = tune_runs.run_tune(
                    plan, payloads, sweep_dir, resume, progress, restart, watch.say
                )
            phases.end("tune")
        _settle(plan, uri, sweep, todo, results, summary, sweep_dir)
        phases.end("mlflow_settle")
    finally:
        ray.shutdown()
    summary.seconds = phases.end("ray_shutdown")
    return summary


def _rate(planned: dict[str, Estimate], key: str) -> float | None:
    found = planned.get(key)
    return found.train_flops_per_s if found else None


def _planned(plan: Plan, pending: list, tflops: float | None, echo) -> dict[str, Estimate]:
    """Each pending trial's estimate (by hash): its training rate measured here in a few seconds
    (or ``tflops``) and its time; and a line with the sweep's planned time on this machine."""
    if not pending:
        return {}
    try:
        estimates = estimate(plan, tflops * 1e12 if tflops else None, trials=pending)
    except DataError as error:  # the trial that reads these files fails with this error, alone
        echo(f"planned: no estimate, a trial's data cannot be read here: {error}")
        return {}
    seconds = [e.seconds for e in estimates if e.seconds is not None]
    if seconds:
        at_once = lanes(plan)
        echo(
            f"planned: about {sweep_seconds(seconds, at_once) / 60:.1f} min for {len(seconds)} trials, "
            f"{at_once} at once, at the rates measured on this machine"
        )
    return {t.hash: e for t, e in zip(pending, estimates, strict=True) if e.train_flops_per_s}


def interrupted(plan: Plan, storage: Path) -> bool:
    """Whether a sweep of ``plan``'s spec under ``storage`` was interrupted (its state is kept
    until it ends)."""
    return (storage.resolve() / plan.spec.name / STATE_FILE).is_file()


def _preflight(plan: Plan, uri: str, sweep_dir: Path, storage: Path, resume: bool) -> dict | None:
    """What can be refused before anything starts: the data, the store's and the sweep folder's
    disks, a --resume with nothing (or another spec) to resume. Returns the saved sweep state."""
    ray_cluster.check_data(plan)
    check_store_writable(uri)
    check_writable(sweep_dir, "Tune's state and trial checkpoints")
    state_path = sweep_dir / STATE_FILE
    previous = json.loads(state_path.read_text()) if state_path.is_file() else None
    if resume and previous is None:
        raise UserError(
            f"there is no interrupted sweep of {plan.spec.name} under {storage} to resume; "
            "run it without --resume."
        )
    if resume and previous["spec_hash"] != plan.hash:
        raise UserError(
            f"the interrupted sweep under {storage} ran a different version of {plan.path}; "
            "run it without --resume."
        )
    if resume and (old := tune_runs.pre_namespace_state(sweep_dir)):
        raise UserError(
            f"the interrupted sweep under {sweep_dir} was saved by an older ablab (its modules were "
            f"named {', '.join(old)}), which Tune cannot restore; run it without --resume: trials "
            "whose runs finished are skipped, the others start again."
        )
    return previous


def _settle(plan, uri: str, sweep, todo, results, summary: Summary, sweep_dir: Path) -> None:
    """Record each trial's outcome and end the parent run; an interrupted sweep keeps Tune's
    state and its parent run open for --resume."""
    then = (
        f"the trials' results are kept under {sweep_dir}; once it answers, "
        f"ablab run {plan.path} --resume records them."
    )
    with mlflow_runs.store_answers(uri, then):
        if todo:
            made = [sweep.run_ids[t.hash] for t in todo if t.hash in sweep.run_ids]
            summary.trials = mlflow_runs.outcome(
                uri, mlflow_runs.settle(uri, results, summary.interrupted, made)
            )
        if summary.interrupted:
            mlflow_runs.end_parent(uri, sweep.parent_run_id, "KILLED", summary.trials)
        else:
            mlflow_runs.end_parent(
                uri, sweep.parent_run_id, "FAILED" if summary.failed else "FINISHED", summary.trials
            )
            (sweep_dir / STATE_FILE).unlink(missing_ok=True)


class Phases:
    """Wall time of consecutive phases: each :meth:`end` closes the phase begun by the last."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def end(self, name: str) -> dict[str, float]:
        now = time.monotonic()
        self.seconds[name] = now - self._last
        self._last = now
        return self.seconds
