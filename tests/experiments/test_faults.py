"""Faults injected into real sweeps: workers killed, checkpoints corrupted, the tracking server
stopped, many trials writing to one sqlite store. Every trial must end accounted for, with every
metric logged once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ablab.trainer.tracking import record
from tests.experiments.conftest import ablab, sqlite_uri
from tests.experiments.helpers import (
    assert_unique_steps,
    free_port,
    mlflow_server,
    most_at_once,
    processes,
    start_ablab,
    stop,
    trial_runs,
    trial_spans,
    wait_for,
    wait_healthy,
    write_spec,
)

pytestmark = pytest.mark.integration

COMPARED = ("bleu", "bleu_lc", "chrf", "ece", "test_nll", "best_val_bleu", "epochs", "steps")


def kill_workers(ray_dir: str) -> int:
    """SIGKILL every trial worker of this test's Ray; how many were killed."""
    pids = wait_for(lambda: processes("ray::ImplicitFunc", ray_dir), 60, "trial workers")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def by_trial(uri: str, experiment: str) -> dict[str, object]:
    return {r.data.tags["ablab.trial"]: r for r in trial_runs(uri, experiment)}


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_workers_killed_again_and_again_and_a_corrupted_checkpoint_change_nothing(
    tmp_path, ray_tmpdir, shared_ray
):
    """Tolerance: none. The trainer restores weights, optimizer, schedule, data order and every
    RNG bit for bit, and a trial runs on one CPU thread, so a resumed trial computes exactly what
    an uninterrupted one does (on a GPU, atomics in some backward kernels would not allow this)."""
    body = dict(ablations={"heads": {"grid": {"model.heads": [1]}}}, retries=6, budget={"epochs": 10})
    calm, stormy = tmp_path / "calm", tmp_path / "stormy"
    calm.mkdir(), stormy.mkdir()
    reference = ablab("run", write_spec(calm, "faults", **body), cwd=calm, ray=shared_ray)
    assert reference.returncode == 0, reference.stderr[-3000:]

    spec = write_spec(stormy, "faults", **body)
    tune_dir = stormy / "runs" / "sweeps" / "faults" / "tune"
    driver = start_ablab(stormy, "run", spec, capture=True)
    killed, corrupted = 0, None
    try:
        wait_for(lambda: list(tune_dir.glob("*/checkpoint_000000")), 600, "a first epoch")
        killed += kill_workers(ray_tmpdir)
        newest = wait_for(lambda: list(tune_dir.glob("*/checkpoint_000003")), 600, "a fourth epoch")
        killed += kill_workers(ray_tmpdir)
        # truncate the newest checkpoint of that trial while its new worker starts
        work = stormy / "runs" / "sweeps" / "faults" / "work" / newest[0].parent.name
        corrupted = sorted((work / "checkpoints").glob("step-*.pt"))[-1]
        corrupted.write_bytes(corrupted.read_bytes()[:1000])
        wait_for(lambda: list(tune_dir.glob("*/checkpoint_000006")), 600, "a seventh epoch")
        killed += kill_workers(ray_tmpdir)
        _, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, err[-3000:]
    assert killed >= 5 and err.count("retrying") >= 5, err[-3000:]

    expected, uri = by_trial(sqlite_uri(calm), "ablab/faults"), sqlite_uri(stormy)
    got = by_trial(uri, "ablab/faults")
    assert sorted(got) == sorted(expected) == ["baseline,seed=1", "heads=1,seed=1"]  # one run per trial
    for name, run in got.items():
        assert (
            run.data.tags["ablab.status"] == "finished" and int(run.data.tags["ablab.resumed_from_step"]) > 0
        )
        steps = assert_unique_steps(uri, run.info.run_id)
        assert steps == list(range(2, steps[-1] + 1, 2))  # every logged step, once
        reference_run = expected[name]
        final, reference = summary(run), summary(reference_run)
        for key in COMPARED:
            assert final[key] == reference[key], (name, key)
        for key in ("train/loss", "val/loss", "val/bleu"):
            assert history(uri, run.info.run_id, key) == history(
                sqlite_uri(calm), reference_run.info.run_id, key
            ), (name, key)

    victim = got[corrupted.parent.parent.name.replace("_", ",")]
    events = [a.path for a in MlflowClient(uri).list_artifacts(victim.info.run_id, "events")]
    assert events, "the skipped checkpoint was not logged on the run"
    text = Path(
        MlflowClient(uri).download_artifacts(victim.info.run_id, events[0], str(tmp_path))
    ).read_text()
    assert corrupted.name in text and "does not match" in text


@pytest.mark.waits
def test_the_tracking_server_stopped_for_a_minute_then_gone_for_good(tmp_path, shared_ray):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    joined = ("--tracking-uri", uri, "--address", shared_ray.address)
    server, drivers = mlflow_server(tmp_path, port), []
    try:
        wait_healthy(uri, "the MLflow server")
        spec = write_spec(tmp_path, "outage", budget={"minutes": 1.25})
        driver = start_ablab(tmp_path, "run", spec, *joined, capture=True, env=shared_ray.env)
        drivers.append(driver)
        client = MlflowClient(uri)

        def logging():
            runs = trial_runs(uri, "ablab/outage")
            return runs and client.get_metric_history(runs[0].info.run_id, "train/loss") and runs[0]

        run_id = wait_for(logging, 600, "the trial to log").info.run_id
        stop(server)
        down = time.time()
        time.sleep(60)
        server = mlflow_server(tmp_path, port)
        wait_healthy(uri, "the MLflow server, started again")
        up = time.time()
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-3000:]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["ablab.status"] == "finished"
        steps = assert_unique_steps(uri, run_id)
        assert steps == list(range(2, steps[-1] + 1, 2))  # nothing lost, nothing doubled
        logged_at = [m.timestamp / 1000 for m in client.get_metric_history(run_id, "train/loss")]
        assert sum(down + 5 < t < up - 5 for t in logged_at) > 10  # it trained on while the server was down
        validated = [m.step for m in client.get_metric_history(run_id, "val/bleu")]
        # every validation once (the time limit can end a partial epoch, validated too)
        assert validated == sorted(set(validated)) and len(validated) >= summary(run)["epochs"] > 10

        # gone for good: the trial ends with a clear error, its results kept, and --resume
        # delivers them once a server answers again
        spec = write_spec(tmp_path, "gone", budget={"minutes": 0.2}, retries=0)
        patience = {"ABLAB_TRACKING_PATIENCE": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        driver = start_ablab(tmp_path, "run", spec, *joined, capture=True, env={**shared_ray.env, **patience})
        drivers.append(driver)
        run_id = wait_for(lambda: trial_runs(uri, "ablab/gone"), 600, "the trial's run")[0].info.run_id
        wait_for(lambda: client.get_metric_history(run_id, "train/loss"), 600, "the trial to log")
        stop(server)
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 1, err[-3000:]
        last = err.rstrip().splitlines()[-1]  # (Tune logs the trial's own error above it)
        assert f"the MLflow tracking store {uri} does not answer" in last and "--resume" in last, err[-3000:]
        kept = list(tmp_path.glob("runs/sweeps/gone/work/*"))
        assert [(k / "result.json").is_file() and (k / "unsent_tracking.json").is_file() for k in kept] == [
            True
        ]

        server = mlflow_server(tmp_path, port)
        wait_healthy(uri, "the MLflow server, back")
        out = ablab("run", spec, "--resume", "--tracking-uri", uri, cwd=tmp_path, ray=shared_ray)
        assert out.returncode == 0, out.stderr[-3000:]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and summary(run)["bleu"] is not None
        steps = assert_unique_steps(uri, run_id)
        assert steps == list(range(2, steps[-1] + 1, 2))
    finally:
        for driver in drivers:
            stop(driver)
        stop(server)


def test_eight_trials_at_once_on_one_sqlite_store(tmp_path, shared_ray):
    spec = write_spec(
        tmp_path,
        "crowd",
        seeds=list(range(1, 9)),
        resources={"cpus": 0.25},
        max_concurrent=8,
        budget={"epochs": 4},
    )
    out = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "locked" not in out.stderr and "OperationalError" not in out.stderr
    uri = sqlite_uri(tmp_path)
    runs = trial_runs(uri, "ablab/crowd")
    assert sorted(r.data.tags["ablab.trial"] for r in runs) == [f"baseline,seed={s}" for s in range(1, 9)]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["ablab.status"] == "finished"
        assert summary(run)["bleu"] is not None and "val/bleu" in run.data.metrics
        assert_unique_steps(uri, run.info.run_id)
    spans = trial_spans(uri, runs)
    assert most_at_once(spans) == 8, spans  # all eight on their workers at the same time


def summary(run) -> dict:
    """The run's final metrics by the trainer's names (``bleu``, ``epochs``, ...)."""
    return record.summary(run.data.metrics, run.data.tags.get(record.TEST_SET))
