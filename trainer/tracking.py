"""Experiment tracking: one training run = one MLflow run.

The trainer talks to a :class:`Tracker`; :class:`MlflowTracker` is the real one and
:class:`NullTracker` records nothing (unit tests, dry runs). Step metrics are buffered and
written in batches (``log_batch``), which keeps per-step logging off the training hot path.

The default store is a sqlite database under ``./mlruns`` (absolute path, so it survives a
change of working directory), with artifacts beside it; ``MLFLOW_TRACKING_URI`` or an
explicit URI selects another store or a tracking server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_STATUSES = {"finished": "FINISHED", "diverged": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
"""ablab status -> MLflow run status. A diverged run is a result, so MLflow shows it finished;
the ``ablab.status`` tag tells the two apart."""


def default_tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else sqlite at ``<root or cwd>/mlruns/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return absolute_uri(env)
    store = (root or Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{store / 'mlflow.db'}"


def absolute_uri(uri: str) -> str:
    """Make a relative sqlite or file URI absolute (trial workers run in other folders)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def artifact_root(tracking_uri: str) -> str | None:
    """Where a local store keeps artifacts (``<store folder>/artifacts``); None for servers."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def git_commit() -> str:
    """The commit of the ablab source tree, ``-dirty`` if it has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


class Tracker(Protocol):
    run_id: str | None
    io_seconds: float  # wall time spent writing to the store so far

    def start(
        self, params: dict[str, Any], tags: dict[str, str], run_id: str | None = None
    ) -> str | None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_json(self, data: Any, artifact_file: str) -> None: ...

    def log_file(self, path: Path, artifact_path: str | None = None) -> None: ...

    def flush(self) -> None: ...

    def end(self, status: str) -> None: ...


class NullTracker:
    """Records nothing."""

    run_id: str | None = None
    io_seconds = 0.0

    def start(self, params, tags, run_id=None):
        return None

    def log_metrics(self, metrics, step):
        pass

    def set_tags(self, tags):
        pass

    def log_text(self, text, artifact_file):
        pass

    def log_json(self, data, artifact_file):
        pass

    def log_file(self, path, artifact_path=None):
        pass

    def flush(self):
        pass

    def end(self, status):
        pass


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root) if missing."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(tracking_uri))


class MlflowTracker:
    """Logs to an MLflow run through ``MlflowClient`` (no global fluent-API state).

    Nothing touches the store before :meth:`start`: a run that fails on bad input first
    leaves no database, experiment or run behind. The run is created at start, or reopened:
    the one a resumed checkpoint names, else ``run_id`` (a run a sweep driver created).
    Metrics are buffered and written at :meth:`flush`, which the training loop calls right
    after each checkpoint. A reopened run remembers the last step logged per metric and drops
    what it logs again at or before it: a run resumed from an older checkpoint than the newest
    (a stale Tune state) replays those steps deterministically, so nothing is lost or doubled.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
    ):
        self.tracking_uri = absolute_uri(tracking_uri)
        self.client = None
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.run_id: str | None = run_id
        self._buffer: list = []
        self._logged_up_to: dict[str, int] = {}  # metric -> last step already in the run

    def start(self, params: dict[str, Any], tags: dict[str, str], run_id: str | None = None) -> str:
        """Create or reopen the run; log params (once per run) and tags."""
        from mlflow import MlflowClient

        self.client = TimedClient(MlflowClient(self.tracking_uri))
        all_tags = {**tags, **self.tags}
        if self.parent_run_id:
            all_tags["mlflow.parentRunId"] = self.parent_run_id
        run_id = run_id or self.run_id
        if run_id is not None:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            run = self.client.get_run(run_id)
            if not run.data.params:
                self._log_params(params)
            self._logged_up_to = {
                key: max(m.step for m in self.client.get_metric_history(run_id, key))
                for key in run.data.metrics
            }
            self.set_tags(all_tags)
            return run_id
        experiment_id = ensure_experiment(self.tracking_uri, self.experiment)
        self.run_id = self.client.create_run(experiment_id, tags=all_tags, run_name=self.run_name).info.run_id
        self._log_params(params)
        return self.run_id

    @property
    def io_seconds(self) -> float:
        """Wall time spent in calls to the tracking store so far."""
        return self.client.seconds if self.client is not None else 0.0

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts 100 params per batch
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.extend(
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if v is not None and step > self._logged_up_to.get(k, -1)
        )

    def flush(self) -> None:
        for i in range(0, len(self._buffer), 1000):  # MLflow accepts 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=self._buffer[i : i + 1000])
        self._buffer.clear()

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_json(self, data: Any, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(data, indent=1), artifact_file)

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str) -> None:
        self.flush()
        self.set_tags({"ablab.status": status})
        self.client.set_terminated(self.run_id, status=RUN_STATUSES[status])


class TimedClient:
    """An ``MlflowClient`` that adds up the wall time of every call made through it."""

    def __init__(self, client):
        self._client = client
        self.seconds = 0.0

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def _param_value(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)
