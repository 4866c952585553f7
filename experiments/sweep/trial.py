"""What runs inside a Ray Tune trial: one call of the shared trainer, reporting to Tune.

The payload (``params["trial"]``, a :class:`TrialPayload`) carries the resolved trainer config,
the trial's name and hash, and where to log: the MLflow URI, experiment, parent run and the
trial's own run (made by the driver; a search trial makes its own). Searched values arrive as
the other keys of ``params`` (dotted config keys) and override the config.

Each epoch the trial reports its validation metrics to Tune with the newest checkpoint; a
retried or restored trial gets that checkpoint back from ``tune.get_checkpoint()``, copies it
into its work directory (``<sweep folder>/work/<trial>``) unless that holds it already, and the
trainer resumes from the newest valid checkpoint there exactly, in the same MLflow run.
A crash is left to Tune to retry; an input error (:class:`~ablab.trainer.errors.UserError`: data that
cannot be read, a config the trainer refuses) would fail every retry alike, so the trial ends
at once with status ``failed`` and the error on its run.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ablab.experiments.sweep import pace
from ablab.experiments.sweep.run_figures import log_run_figures
from ablab.trainer import checkpoint as ckpt
from ablab.trainer.config.files import apply_overrides
from ablab.trainer.config.schema import config_hash, flatten, from_dict
from ablab.trainer.errors import UserError
from ablab.trainer.run import train
from ablab.trainer.tracking import record
from ablab.trainer.tracking.mlflow_tracker import MlflowTracker

COMPLETE = "trial_complete"
"""Result key of a trial's final report (Tune's own ``done`` is also set on early stops)."""


@dataclass(frozen=True)
class TrialPayload:
    """What the sweep driver hands a trial. It travels through Tune as a plain mapping
    (:meth:`params`), so that Tune's saved state restores it after the driver died."""

    name: str  # the trial's stable name, "heads=8,seed=1"
    hash: str  # the resolved config's hash
    config: dict[str, Any]  # the resolved trainer config, nested
    tags: dict[str, str]  # the MLflow tags of the trial's run
    run_id: str | None  # the run the driver made for it (None for a search trial)
    tracking_uri: str
    experiment: str
    parent_run_id: str
    metric: str  # the spec's metric, in every report to Tune
    work_root: str  # the sweep's folder of trial work directories
    cpus: float
    gpus: float
    run_figures: bool = True  # the spec's run_figures
    planned_flops_per_s: float | None = None  # the training rate planned (ablab.experiments.sweep.pace)

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, params: dict[str, Any]) -> TrialPayload:
        """The payload from its mapping; a field added later needs a default here, since a sweep
        saved before it restores mappings without it."""
        return cls(**params)


class TuneReporter:
    """Reports each epoch's metrics and newest checkpoint to Ray Tune; says once, on stderr and
    on the run, when the trial trains far slower than planned (:mod:`ablab.experiments.sweep.pace`)."""

    def __init__(self, tracker: MlflowTracker, trial: str, planned_flops_per_s: float | None):
        self.tracker, self.trial, self.planned = tracker, trial, planned_flops_per_s
        self.last_epoch: dict[str, float] = {}
        self.checked = False
        self.device, self.precision = torch.device("cpu"), "fp32"

    def on_start(self, device, precision) -> None:
        self.device, self.precision = device, precision

    def on_step(self, progress, metrics) -> None:
        if self.checked or progress.step < pace.CHECK_AFTER_UPDATES or not progress.train_seconds:
            return
        self.checked = True
        measured = progress.flops / progress.train_seconds
        if pace.is_slow(measured, self.planned):
            cause = pace.likely_cause(self.precision, self.device, torch.get_num_threads())
            line = pace.slow_line(self.trial, measured, self.planned, cause)
            print(f"ablab: warning: {line}", file=sys.stderr, flush=True)
            self.tracker.set_tags({record.SLOW: line})

    def on_epoch(self, progress, metrics: dict[str, float], checkpoint_dir: Path) -> None:
        from ray import tune

        self.last_epoch = dict(metrics)
        with tempfile.TemporaryDirectory() as staging:
            for path in _newest_files(checkpoint_dir):
                os.link(path, Path(staging) / path.name)
            tune.report(
                {
                    **metrics,
                    "epoch": progress.epochs,
                    "step": progress.step,
                    "mlflow_run_id": self.tracker.run_id,
                },
                checkpoint=tune.Checkpoint.from_directory(staging),
            )


def dir_name(trial_name: str) -> str:
    """A trial's folder name: its name without commas (``heads=8_seed=1``)."""
    return trial_name.replace(",", "_")


def _newest_files(checkpoint_dir: Path) -> list[Path]:
    """The newest resumable checkpoint and the best model, each with its checksum file."""
    files = []
    newest = ckpt.step_checkpoints(checkpoint_dir)[:1]
    for path in [*newest, checkpoint_dir / "best.pt"]:
        for f in (path, path.with_name(path.name + ".sha256")):
            if f.is_file():
                files.append(f)
    return files


def _restore(workdir: Path) -> None:
    """Copy the checkpoint Tune restored for this trial, if any, into the work directory."""
    from ray import tune

    restored = tune.get_checkpoint()
    if restored is None:
        return
    target = workdir / "checkpoints"
    target.mkdir(parents=True, exist_ok=True)
    with restored.as_directory() as folder:
        for path in Path(folder).iterdir():
            if not (target / path.name).exists():
                shutil.copy2(path, target / path.name)


def _search_run(tracker: MlflowTracker, trial_id: str, trial_hash: str) -> str | None:
    """The run this search trial should use: one that already finished its sampled config (a
    re-run replays the seeded sampler's suggestions), else the run an earlier attempt of this
    Tune trial made."""
    from mlflow import MlflowClient

    client = MlflowClient(tracker.tracking_uri)
    experiment = client.get_experiment_by_name(tracker.experiment)
    if experiment is None:
        return None
    same_config = record.search(
        client, experiment.experiment_id, where=f"tags.`{record.TRIAL_HASH}` = '{trial_hash}'"
    )
    done = [r for r in same_config if record.is_done(r)]
    if done:
        return done[0].info.run_id
    earlier = client.search_runs(
        [experiment.experiment_id], f"tags.`{record.TUNE_TRIAL_ID}` = '{trial_id}'", max_results=1
    )
    return earlier[0].info.run_id if earlier else None


def _stored_run(tracker: MlflowTracker):
    """This trial's run as the store holds it (None: not made yet)."""
    if tracker.run_id is None:
        return None
    from mlflow import MlflowClient

    return tracker.patiently(lambda: MlflowClient(tracker.tracking_uri).get_run(tracker.run_id))


def _done(run) -> dict[str, Any] | None:
    """The last metrics of this trial's run if it is done (finished, diverged, stopped early)."""
    if run is None or not record.is_done(run):
        return None
    final = record.summary(run.data.metrics, run.data.tags.get(record.TEST_SET))
    return {**final, "status": record.status(run), "mlflow_run_id": run.info.run_id}


def _identity(config, payload: TrialPayload, searched: bool) -> tuple[str, UserError | None]:
    """The trial's config hash as this worker computes it (a corpus from files counts by its
    content, read here), and why the trial cannot run if this worker's corpus is unreadable or
    is not the one the driver planned with (edited since the sweep started)."""
    try:
        key = config_hash(config)
    except UserError as exc:
        return payload.hash, exc
    if not searched and key != payload.hash:
        return payload.hash, UserError(
            f"the corpus files of {payload.name} changed since the sweep started (config hash "
            f"{key}, planned {payload.hash}); run the sweep again to plan with the files as they are."
        )
    return key, None


def _last(run, metric: str) -> float:
    """The run's last value of a metric Tune ranks trials by (``val_bleu`` is logged as
    ``val/bleu``); NaN if it has none. A search replayed from MLflow ranks its samples by it."""
    return run.data.metrics.get(record.metric_key(metric), math.nan)


def _nodes(run) -> str:
    """The Ray nodes this trial ran on, this one last: ``ip/node-id`` each, comma-separated (an
    attempt after a node was lost runs on another)."""
    import ray

    here = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:12]}"
    before = [n for n in (run.data.tags.get(record.RAY_NODES, "") if run else "").split(",") if n]
    return ",".join(before if before[-1:] == [here] else [*before, here])


def _record_input_error(tracker: MlflowTracker, config, exc: UserError) -> None:
    """Mark the trial's run failed with the error; the trainer did so itself if it had opened
    the run (an error raised before that, e.g. unreadable data, leaves it to us)."""
    if tracker.client is None:
        tracker.start(params=flatten(config), tags={})
        tracker.set_tags({record.ERROR: f"{type(exc).__name__}: {exc}"[:1000]})
        tracker.end(record.FAILED)


def run_trial(params: dict[str, Any]) -> None:
    """The Tune trainable: train the trial's config, report to Tune, log to MLflow."""
    try:
        _run_trial(params)
    finally:  # the worker process runs the next trial: hand this one's memory back to the OS
        gc.collect()
        _malloc_trim()


def _malloc_trim() -> None:
    """``malloc_trim(0)`` where the C library has it (glibc); elsewhere nothing."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _run_trial(params: dict[str, Any]) -> None:
    from ray import tune

    payload = TrialPayload.of(params["trial"])
    searched = {k: v for k, v in params.items() if k != "trial"}
    config = from_dict(apply_overrides(payload.config, searched))
    key, unusable = _identity(config, payload, bool(searched))
    tags = {**payload.tags, record.TRIAL_HASH: key}
    run_id = payload.run_id
    # a search sample is told apart by its Tune id; a confirmation seed is the plan's own trial
    sampled = searched and tags.get(record.SEARCH_ROLE) != "confirm"
    if searched:
        trial_id = tune.get_context().get_trial_id()
        tags[record.TUNE_TRIAL_ID] = trial_id
        if sampled:
            tags[record.TRIAL] = f"{payload.name},{trial_id}"
        tags.update({f"{record.SEARCHED}{k}": str(v) for k, v in searched.items()})
    tracker = MlflowTracker(
        payload.tracking_uri,
        payload.experiment,
        run_name=tags[record.TRIAL],
        parent_run_id=payload.parent_run_id,
        tags=tags,
        run_id=run_id,
    )
    if searched and run_id is None:
        tracker.run_id = tracker.patiently(
            lambda: _search_run(tracker, tags[record.TUNE_TRIAL_ID], tags[record.TRIAL_HASH])
        )
    stored = _stored_run(tracker)
    done = _done(stored)
    if done is not None:  # a restored Tune state can be older than MLflow's record
        tune.report({payload.metric: _last(stored, payload.metric), **done, COMPLETE: True})
        return
    if unusable is not None:  # this worker cannot read the corpus the driver planned with
        _record_input_error(tracker, config, unusable)
        tune.report(
            {payload.metric: math.nan, "status": "failed", "mlflow_run_id": tracker.run_id, COMPLETE: True}
        )
        return
    # not Tune's trial folder: on the driver's node Tune copies that folder to the sweep's
    # storage after every result without deleting, which would keep every checkpoint ever pruned
    workdir = Path(payload.work_root) / (tags[record.TUNE_TRIAL_ID] if sampled else dir_name(payload.name))
    _restore(workdir)
    tracker.tags[record.RAY_NODES] = _nodes(stored)
    reporter = TuneReporter(tracker, tags[record.TRIAL], payload.planned_flops_per_s)
    try:
        result = train(config, workdir=workdir, tracker=tracker, reporter=reporter)
    except UserError as exc:  # bad data or config fails every attempt alike: recorded, not retried
        _record_input_error(tracker, config, exc)
        tune.report(
            {payload.metric: math.nan, "status": "failed", "mlflow_run_id": tracker.run_id, COMPLETE: True}
        )
        return
    if payload.run_figures:
        log_run_figures(payload.tracking_uri, result.run_id)
    final = {
        k: v for k, v in result.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    # The spec's metric must be in every result: the last validation's value, or NaN for a run
    # that never validated (diverged), which Optuna records as a failed trial.
    report = {payload.metric: math.nan, **reporter.last_epoch, **final}
    tune.report({**report, "status": result.status, "mlflow_run_id": result.run_id, COMPLETE: True})
