"""ablab run for real: local Ray, a ray start cluster, sqlite and an MLflow server, faults injected."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from ablab.analysis.load import load
from ablab.trainer.hardware.device import device_kind
from ablab.trainer.hardware.precision import resolve
from tests.experiments.conftest import ablab, sqlite_uri
from tests.experiments.helpers import (
    assert_unique_steps,
    free_port,
    mlflow_server,
    processes,
    start_ablab,
    stop,
    trial_runs,
    wait_for,
    wait_healthy,
    write_spec,
)

pytestmark = pytest.mark.integration


def test_smoke_spec_runs_end_to_end(smoke):
    folder, uri, out, seconds, _ = smoke
    assert out.returncode == 0, out.stderr[-3000:]
    runs = trial_runs(uri, "ablab/smoke")
    names = sorted(r.data.tags["ablab.trial"] for r in runs)
    cells = ["heads=1,norm=post,seed=1", "heads=1,norm=pre,seed=1", "heads=4,norm=pre,seed=1"]
    assert names == sorted(["baseline,seed=1", "no_label_smoothing,seed=1", "seq2seq,seed=1", *cells])
    client = MlflowClient(uri)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED" and parent.data.tags["ablab.kind"] == "sweep"
    assert parent.data.tags["ablab.spec_file"] == "smoke.yaml"
    for run in runs:
        tags = run.data.tags
        assert run.info.status == "FINISHED" and tags["ablab.status"] == "finished", tags.get("ablab.error")
        assert (
            tags["ablab.spec"] == "smoke" and tags["ablab.spec_hash"] == parent.data.tags["ablab.spec_hash"]
        )
        assert tags["ablab.trial_hash"] == tags["ablab.config_hash"] and tags["ablab.git_commit"]
        assert tags["ablab.seed"] == "1" and tags["ablab.groups"]
        test = f"test/{tags['ablab.test_set']}"
        for metric in (
            f"{test}/bleu",
            f"{test}/chrf",
            f"{test}/ece",
            "val/bleu",
            "run/params",
            "run/tgt_tokens_per_s",
        ):
            assert metric in run.data.metrics, (run.info.run_name, metric)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"hypotheses", "calibration", "attention", "config.yaml", "samples.txt"} <= artifacts
        assert_unique_steps(uri, run.info.run_id)
    heads = next(r for r in runs if r.data.tags["ablab.trial"] == "heads=1,norm=pre,seed=1")
    assert heads.data.params["model.heads"] == "1" and heads.data.tags["ablab.axis.model.heads"] == "1"
    assert heads.data.params["model.norm"] == "pre" and heads.data.tags["ablab.axis.model.norm"] == '"pre"'
    assert "done 6/6" in out.stderr and "failed 0" in out.stderr
    assert "planned: about" in out.stderr and "at the rates measured on this machine" in out.stderr
    here = torch.device("cpu")
    for run in runs:  # what each trial trained in and on, and an honest MFU
        assert (
            run.data.tags["ablab.precision"] == resolve("auto", here)
            and run.data.params["train.precision"] == "auto"
        )
        assert run.data.tags["ablab.device_kind"] == device_kind(here)
        assert 0 < run.data.metrics["run/mfu"] < 1


def test_a_trial_far_slower_than_planned_says_why_in_the_sweep_and_on_its_run(tmp_path, shared_ray):
    """Planned at 1,000 TFLOP/s, a tiny trial on this CPU is far slower: one line, with a cause."""
    spec = write_spec(tmp_path, "slow", seeds=[1])
    out = ablab("run", spec, "--tflops", "1000", cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = trial_runs(sqlite_uri(tmp_path), "ablab/slow")
    line = run.data.tags["ablab.slow"]
    assert (
        line.startswith("baseline,seed=1 trains at") and "1,000,000.0 GFLOP/s planned; likely cause:" in line
    )
    assert out.stderr.count(line) == 1


def test_running_it_again_launches_nothing(smoke):
    folder, uri, _, _, spec = smoke
    before = len(
        MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("ablab/smoke").experiment_id])
    )
    out = ablab("run", spec, cwd=folder)
    assert out.returncode == 0 and "nothing to run" in out.stderr
    assert "ray" not in out.stderr.lower().split("nothing to run")[0]
    # on other hardware too (oneDNN held to AVX2: no native bf16, 'auto' would train in fp32 there):
    # a trial is what the spec asks for, so its finished run stands (the report tells kinds apart)
    avx2 = ablab("run", spec, cwd=folder, env={"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"})
    assert avx2.returncode == 0 and "nothing to run" in avx2.stderr
    after = len(
        MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("ablab/smoke").experiment_id])
    )
    assert after == before  # no trial run, not even a parent run


def test_a_rerun_runs_only_what_is_new_and_force_runs_everything(tmp_path, shared_ray):
    uri = sqlite_uri(tmp_path)
    spec = write_spec(tmp_path, "grows", budget={"epochs": 1})
    assert ablab("run", spec, cwd=tmp_path, ray=shared_ray).returncode == 0
    (first,) = trial_runs(uri, "ablab/grows")
    spec = write_spec(
        tmp_path, "grows", budget={"epochs": 1}, ablations={"no_ls": {"loss.label_smoothing": 0}}
    )
    out = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0 and "1 trials to run, 1 already done" in out.stderr, out.stderr[-3000:]
    runs = trial_runs(uri, "ablab/grows")
    assert sorted(r.data.tags["ablab.trial"] for r in runs) == ["baseline,seed=1", "no_ls,seed=1"]
    assert first.info.run_id in {r.info.run_id for r in runs}  # the finished baseline was kept
    assert not MlflowClient(uri).list_artifacts(first.info.run_id, "figures")  # the spec's run_figures: false
    out = ablab("run", spec, "--force", cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0 and "2 trials to run, 0 already done" in out.stderr, out.stderr[-3000:]
    forced = [r for r in trial_runs(uri, "ablab/grows") if r.info.run_id not in {x.info.run_id for x in runs}]
    assert sorted(r.data.tags["ablab.status"] for r in forced) == ["finished", "finished"]


def test_driver_killed_mid_sweep_then_resume(tmp_path, ray_tmpdir):
    spec = write_spec(
        tmp_path,
        "resumed",
        ablations={"heads": {"grid": {"model.heads": [1, 4]}}},
        max_concurrent=1,
        budget={"epochs": 12},
    )
    uri = sqlite_uri(tmp_path)
    driver = start_ablab(tmp_path, "run", spec)

    def one_done_one_training():
        # the driver writes its state once the store, experiment and runs exist; opening the
        # store earlier would race the driver on creating it
        if not (tmp_path / "runs" / "sweeps" / "resumed" / "ablab_sweep.json").exists():
            return None
        runs = trial_runs(uri, "ablab/resumed")
        done = [r for r in runs if r.data.tags.get("ablab.status") == "finished"]
        training = [
            r
            for r in runs
            if r.info.status == "RUNNING"
            and MlflowClient(uri).get_metric_history(r.info.run_id, "train/loss")
        ]
        return (done, training) if done and training else None

    try:
        done, training = wait_for(one_done_one_training, 600, "one finished trial and one in training")
        name = training[0].data.tags["ablab.trial"].replace(",", "_")
        wait_for(
            lambda: list(tmp_path.glob(f"runs/sweeps/resumed/tune/{name}/checkpoint_000001")),
            600,
            "Tune to persist two checkpoints of the trial in training",
        )
        # with CheckpointConfig(num_to_keep=2) Tune snapshots its state at the second checkpoint
        time.sleep(1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finished_first = {r.info.run_id: r.info.end_time for r in done}
    wait_for(lambda: not processes("ray::", ray_tmpdir), 60, "Ray to go down with its driver")

    out = ablab("run", spec, "--resume", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = trial_runs(uri, "ablab/resumed")
    assert sorted(r.data.tags["ablab.trial"] for r in runs) == [
        "baseline,seed=1",
        "heads=1,seed=1",
        "heads=4,seed=1",
    ]
    for run in runs:
        assert run.data.tags["ablab.status"] == "finished"
        assert_unique_steps(uri, run.info.run_id)
        if run.info.run_id in finished_first:  # finished before the kill: not run again
            assert run.info.end_time == finished_first[run.info.run_id]
    interrupted = next(r for r in runs if r.info.run_id == training[0].info.run_id)
    assert int(interrupted.data.tags["ablab.resumed_from_step"]) > 0


def interrupt(tmp_path: Path, spec: Path, checkpoint: str, *args: str) -> str:
    """Run ``ablab run SPEC ARGS``, Ctrl-C it once a trial has saved ``checkpoint``; its stderr."""
    driver = start_ablab(tmp_path, "run", spec, *args, capture=True)
    try:
        wait_for(lambda: list(tmp_path.glob(f"runs/sweeps/*/tune/*/{checkpoint}")), 600, checkpoint)
        os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
        _, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 130, err[-3000:]
    assert "interrupted: continue with" in err and "--resume" in err
    return err


def test_ctrl_c_marks_running_trials_killed_and_resume_finishes_them(tmp_path, ray_tmpdir):
    spec = write_spec(
        tmp_path, "stopped", budget={"epochs": 12}, ablations={"heads": {"grid": {"model.heads": [1]}}}
    )
    uri = sqlite_uri(tmp_path)
    interrupt(tmp_path, spec, "checkpoint_000001")
    stopped = trial_runs(uri, "ablab/stopped")
    assert len(stopped) == 2 and {r.data.tags["ablab.status"] for r in stopped} == {"killed"}
    assert {r.info.status for r in stopped} == {"KILLED"}

    interrupt(tmp_path, spec, "checkpoint_000004", "--resume")  # a resumed sweep stops alike
    assert {r.data.tags["ablab.status"] for r in trial_runs(uri, "ablab/stopped")} == {"killed"}

    resumed = ablab("run", spec, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = trial_runs(uri, "ablab/stopped")
    assert {r.info.run_id for r in runs} == {r.info.run_id for r in stopped}  # the same runs, continued
    for run in runs:
        assert (
            run.data.tags["ablab.status"] == "finished" and int(run.data.tags["ablab.resumed_from_step"]) > 0
        )
        assert_unique_steps(uri, run.info.run_id)


def test_divergence_is_a_result_and_a_failure_does_not_stop_the_others(tmp_path, shared_ray):
    bad_data = tmp_path / "bad_data"
    shutil.copytree(os.environ["MULTI30K_DIR"], bad_data)
    (bad_data / "train.de.gz").chmod(0o644)
    (bad_data / "train.de.gz").write_bytes((bad_data / "train.de.gz").read_bytes()[:5000])  # truncated
    spec = write_spec(
        tmp_path,
        "faults",
        ablations={
            "diverges": {"optim.lr": 10000.0, "schedule.warmup_steps": 0},
            "unreadable": {"data.dir": str(bad_data)},
        },
        retries=2,
        budget={"epochs": 2},
    )
    uri = sqlite_uri(tmp_path)
    out = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 1, out.stderr[-3000:]  # a failed trial fails the sweep, after all ran
    runs = {r.data.tags["ablab.trial"]: r for r in trial_runs(uri, "ablab/faults")}
    assert sorted(runs) == ["baseline,seed=1", "diverges,seed=1", "unreadable,seed=1"]
    assert runs["baseline,seed=1"].data.tags["ablab.status"] == "finished"
    diverged = runs["diverges,seed=1"]
    assert diverged.data.tags["ablab.status"] == "diverged" and diverged.info.status == "FINISHED"
    assert "run/diverged_step" in diverged.data.metrics
    failed = runs["unreadable,seed=1"]
    assert failed.data.tags["ablab.status"] == "failed" and failed.info.status == "FAILED"
    assert "train.de.gz" in failed.data.tags["ablab.error"]
    assert "retrying" not in out.stderr  # neither a divergence nor unreadable data is retried
    assert "planned: no estimate, a trial's data cannot be read here" in out.stderr
    assert "FAILED unreadable,seed=1" in out.stderr and "failed 1" in out.stderr
    assert "failed  BLEU      -  unreadable,seed=1" in out.stdout and "train.de.gz" in out.stdout
    parent = MlflowClient(uri).get_run(failed.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"


def test_cluster_path_with_ray_start_and_an_mlflow_server(tmp_path, shared_ray):
    mlflow_port = free_port()
    server = mlflow_server(tmp_path, mlflow_port)
    server_uri = f"http://127.0.0.1:{mlflow_port}"
    try:
        wait_healthy(server_uri, "the MLflow server")
        spec = write_spec(
            tmp_path, "cluster", ablations={"heads": {"grid": {"model.heads": [1]}}}, budget={"epochs": 2}
        )
        out = ablab("run", spec, "--tracking-uri", server_uri, cwd=tmp_path, ray=shared_ray)
        assert out.returncode == 0, out.stderr[-3000:]
        client = MlflowClient(server_uri)
        runs = trial_runs(server_uri, "ablab/cluster")
        assert len(runs) == 2 and all(r.data.tags["ablab.status"] == "finished" for r in runs)
        for run in runs:
            assert run.info.artifact_uri.startswith("mlflow-artifacts:")
            assert {"hypotheses", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
        assert not (tmp_path / "mlruns").exists()  # nothing went to a local store
    finally:
        stop(server)


def test_optuna_search_with_asha_then_the_other_seeds_at_the_best_values(tmp_path, shared_ray):
    spec = write_spec(
        tmp_path,
        "searched",
        budget={"epochs": 3},
        max_concurrent=2,
        seeds=[1, 2],
        search={
            "space": {"optim.lr": {"loguniform": [0.0003, 0.01]}},
            "trials": 4,
            "scheduler": {"asha": {"grace_period": 1, "reduction_factor": 2}},
        },
    )
    uri = sqlite_uri(tmp_path)
    out = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0, out.stderr[-3000:]
    every = trial_runs(uri, "ablab/searched")
    runs = [r for r in every if r.data.tags["ablab.search_role"] == "search"]
    assert len(runs) == 4 and all(r.data.tags["ablab.seed"] == "1" for r in runs)
    lrs = [float(r.data.params["optim.lr"]) for r in runs]
    assert len(set(lrs)) == 4 and all(0.0003 <= lr <= 0.01 for lr in lrs)
    for run, lr in zip(runs, lrs, strict=True):
        assert float(run.data.tags["ablab.search.optim.lr"]) == lr
        assert run.data.tags["ablab.status"] in ("finished", "early_stopped")
        assert run.data.tags["ablab.trial_hash"] == run.data.tags["ablab.config_hash"]
    assert len({r.data.tags["ablab.trial_hash"] for r in runs}) == 4

    (confirm,) = [r for r in every if r.data.tags["ablab.search_role"] == "confirm"]
    best = max(runs, key=lambda r: r.data.metrics["val/bleu"])  # each run's last validation, as Tune's
    assert (
        confirm.data.tags["ablab.trial"] == "baseline,seed=2"
        and confirm.data.tags["ablab.status"] == "finished"
    )
    assert confirm.data.params["optim.lr"] == best.data.params["optim.lr"]
    assert load(uri, "ablab/searched").trials["run_id"].tolist() == [confirm.info.run_id]  # what is compared


def test_ui_serves_the_store_on_loopback_only_and_stops_with_its_server(tmp_path):
    port = free_port()
    ui = start_ablab(tmp_path, "ui", "--port", str(port))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", "ablab ui")
        external = socket.gethostbyname(socket.gethostname())
        if not external.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((external, port), timeout=2)
        ui.send_signal(signal.SIGTERM)  # to ablab alone, as a service manager would (Ctrl-C: the same path)
        assert ui.wait(timeout=30) == 0

        def closed():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True

        wait_for(closed, 20, "the MLflow server ablab ui started to stop")
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
