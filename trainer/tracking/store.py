"""The tracking store: where it is (a URI made absolute, the default sqlite under ``./mlruns``,
artifacts beside it), its experiments, and what made the runs in it (the ablab version and the
commit of its source tree).

The default store is a sqlite database under ``./mlruns`` (absolute path, so it survives a
change of working directory), with artifacts beside it; ``MLFLOW_TRACKING_URI`` or an
explicit URI selects another store or a tracking server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ablab.trainer.tracking import record

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the source tree: trainer/tracking/store.py


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
    """The commit of the ablab source tree, ``-dirty`` if it has uncommitted changes (outside
    ``results/``, where a committed report is rewritten while it is being made)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


def ablab_version() -> str:
    """``ablab 0.1.0, commit <hash>`` of the installed package and its source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("ablab")
    except PackageNotFoundError:
        number = "(not installed)"
    return f"ablab {number}, commit {git_commit()}"


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root) if missing, and marked
    a model-training experiment so that MLflow's UI opens it on its runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = client.create_experiment(
            name,
            artifact_location=artifact_root(tracking_uri),
            tags={record.EXPERIMENT_KIND: record.MODEL_TRAINING},
        )
        return experiment_id
    if experiment.tags.get(record.EXPERIMENT_KIND) != record.MODEL_TRAINING:
        client.set_experiment_tag(experiment.experiment_id, record.EXPERIMENT_KIND, record.MODEL_TRAINING)
    return experiment.experiment_id
