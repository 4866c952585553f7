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


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The shipped smoke spec, run once for the session on local Ray with a sqlite store."""
    folder = tmp_path_factory.mktemp("smoke")
    started = time.monotonic()
    out = ablab("run", SMOKE, cwd=folder)
    return folder, sqlite_uri(folder), out, time.monotonic() - started
