"""Shared by the sweep and report tests: the ablab CLI as a subprocess, and the smoke sweep,
run once per session on local Ray with a sqlite store."""

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

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "specs" / "smoke.yaml"


def ablab(*args, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [script("ablab"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A Ray temp folder of this test's own (short: Ray's socket paths are length-limited). Every
    Ray process the test starts carries it in its environment, so the test can find and kill its
    own Ray without touching any other Ray on the machine."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
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
def smoke(tmp_path_factory):
    """The smoke spec at test scale, run once for the session on local Ray with a sqlite store:
    (folder, tracking URI, the completed ``ablab run``, seconds, the spec's path)."""
    folder = tmp_path_factory.mktemp("smoke")
    spec = smoke_at_test_scale(folder)
    started = time.monotonic()
    out = ablab("run", spec, cwd=folder)
    return folder, sqlite_uri(folder), out, time.monotonic() - started, spec
