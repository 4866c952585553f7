"""Shared by the tests that run sweeps for real: tiny specs, the ablab CLI and an MLflow server
as subprocesses, and finding this test's own Ray processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from mlflow import MlflowClient

from ablab.experiments.mlflow_ui import stop_group
from tests.conftest import script

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "data": {"train_subset": 1000, "max_tokens": 1024, "vocab_size": 400},
    "model": {"layers": 1, "d_model": 16, "heads": 2, "ff_dim": 16},
    "schedule": {"name": "constant", "warmup_steps": 5},
    "optim": {"lr": 0.003},
    "train": {"epochs": 3, "log_every": 2},
    "eval": {"val_sentences": 20, "test_sentences": 20, "beam_size": 1},
}
"""A config whose trials train in seconds."""


def write_spec(folder: Path, name: str, **body) -> Path:
    """A spec of ``TINY`` trials, ``body`` its other keys. Its trials draw no figures (a few
    CPU-seconds each) unless ``body`` asks: the smoke fixture's trials and ``ablab train`` are
    where run figures are checked."""
    path = folder / f"{name}.yaml"
    spec = {"baseline": {"config": TINY}, "run_figures": False, **body}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def trial_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "tags.`ablab.kind` = 'trial'") if exp else []


def assert_unique_steps(uri: str, run_id: str) -> list[int]:
    steps = [m.step for m in MlflowClient(uri).get_metric_history(run_id, "train/loss")]
    assert steps and len(steps) == len(set(steps)), f"duplicated steps in {run_id}: {sorted(steps)}"
    return sorted(steps)


def processes(fragment: str, ray_dir: str) -> list[int]:
    """PIDs of this test's Ray whose command line contains ``fragment`` (Ray names trial workers
    ray::ImplicitFunc...): those started with ``RAY_TMPDIR=ray_dir`` in their environment, so that
    no other Ray on the machine (a user's sweep, another test) is looked at or killed."""
    found, marker = [], f"RAY_TMPDIR={ray_dir}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if fragment in (entry / "cmdline").read_bytes().decode(errors="replace") and marker in (
                    entry / "environ"
                ).read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_healthy(url: str, what: str) -> None:
    """Wait until an MLflow server answers ``GET /health`` with 200."""

    def healthy():
        try:
            return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
        except OSError:
            return False

    wait_for(healthy, 90, what)


def start_ablab(cwd: Path, *args: str, capture: bool = False, env: dict | None = None) -> subprocess.Popen:
    """``ablab ARGS`` in its own process group (so that a test can kill all of it)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [script("ablab"), *args],
        cwd=cwd,
        stdout=out,
        stderr=out,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server(
    folder: Path, port: int, env: dict | None = None, store: str | None = None
) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1:``port`` over ``store`` (default: sqlite in ``folder``) with
    proxied artifacts in ``folder``, in its own process group (see :func:`stop`)."""
    return subprocess.Popen(
        [
            script("mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            store or f"sqlite:///{folder}/server.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    """Stop a process started in its own group, and everything it started."""
    stop_group(process, timeout=30)


def trial_spans(uri: str, runs: list) -> list[tuple[int, int]]:
    """Each run's time on its worker, in ms: from its first logged training loss to its end (the
    final evaluation included). (A run's own start time is when the sweep made it, before the
    trial was scheduled.)"""
    client = MlflowClient(uri)
    spans = []
    for run in runs:
        stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "train/loss")]
        spans.append((min(stamps), client.get_run(run.info.run_id).info.end_time))
    return spans


def most_running(progress: str) -> int:
    """The most trials the sweep's progress lines (``... running N ...``) had running at once:
    what the scheduler launched, whatever the machine's load made of their timing."""
    counts = [int(n) for n in re.findall(r"\]\s+done \d+/\d+\s+running (\d+)", progress)]
    assert counts, f"no progress line in the sweep's output: {progress[-2000:]}"
    return max(counts)


def most_at_once(spans: list[tuple[int, int]]) -> int:
    """The largest number of spans open at one instant."""
    return max(sum(start <= t <= end for start, end in spans) for t, _ in spans)
