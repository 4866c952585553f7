"""Shared by the sweep and report tests: the ablab CLI as a subprocess, one Ray head for the
session, and the smoke sweep, run once per session on it with a sqlite store."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import script
from tests.experiments.ray_nodes import Cluster

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "specs" / "smoke.yaml"


def ablab(
    *args, cwd: Path, env: dict | None = None, timeout: int = 600, ray: Cluster | None = None
) -> subprocess.CompletedProcess:
    """``ablab ARGS`` in ``cwd``; with ``ray``, ``ablab run`` joins that running Ray
    (``--address``) instead of starting one of its own."""
    if ray is not None:
        args, env = (*args, "--address", ray.address), {**ray.env, **(env or {})}
    return subprocess.run(
        [script("ablab"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def _ray_folder() -> str:
    return tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are length-limited


@pytest.fixture(scope="session")
def shared_ray(isolated_environment):
    """One Ray head (`ray start` on 127.0.0.1 with this machine's CPUs) that the session's sweeps
    join as they would a cluster, instead of each starting and stopping Ray (5 s a sweep). The
    tests that kill Ray's processes, or the driver that owns a local Ray, start their own. Its
    workers have the session's environment (its cache folder and Multi30k), as a local Ray's do."""
    folder = _ray_folder()
    cluster = Cluster(folder).start({}, head_cpus=os.cpu_count())
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A Ray temp folder of this test's own. Every Ray process the test starts carries it in its
    environment, so the test can find and kill its own Ray without touching any other Ray."""
    folder = _ray_folder()
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{folder}/mlruns/mlflow.db"


def smoke_at_test_scale(folder: Path) -> Path:
    """The shipped smoke spec at test scale, written to ``folder/smoke.yaml`` (its experiment is
    still ``ablab/smoke``): one seed and one epoch of 4,000 pairs instead of three seeds and two
    epochs of 16,000, and a crossed group beside its arms (heads 1 and 4 × post- and pre-LN, the
    baseline's cell merged), so grid axes and a factorial design are run and reported too."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(seeds=[1], budget={"epochs": 1})
    spec["baseline"]["config"]["data"]["train_subset"] = 4000
    spec["ablations"]["heads_norm"] = {"grid": {"model.heads": [1, 4], "model.norm": ["post", "pre"]}}
    path = folder / "smoke.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, shared_ray):
    """The smoke spec at test scale, run once for the session on the shared Ray with a sqlite
    store: (folder, tracking URI, the completed ``ablab run``, seconds, the spec's path)."""
    folder = tmp_path_factory.mktemp("smoke")
    spec = smoke_at_test_scale(folder)
    started = time.monotonic()
    out = ablab("run", spec, cwd=folder, ray=shared_ray)
    return folder, sqlite_uri(folder), out, time.monotonic() - started, spec
