"""Pieces of the sweep driver that need no running Ray: the progress line, how a stop of
Tune's controller by Ray's memory monitor is told from other errors, which addresses are this
machine's."""

import math
import signal
import socket
from types import SimpleNamespace

import pytest
from ray.exceptions import OutOfMemoryError

from ablab.experiments.sweep.progress import SweepProgress
from ablab.experiments.sweep.ray_cluster import _local_addresses, worker_env
from ablab.experiments.sweep.tune_runs import WorkerOutOfMemory, _fit, best_values
from ablab.trainer.data.corpus import WORKDIR_ENV


def trial(name, status, result_status=None):
    result = {"status": result_status} if result_status else {}
    return SimpleNamespace(trial_id=name, status=status, last_result=result, __str__=lambda self: name)


def test_a_restored_sweep_counts_the_trials_that_ended_before_it():
    lines = []
    progress = SweepProgress(5, "val_bleu", "max", lines.append)
    progress.setup()
    ended = [trial("a", "TERMINATED", "finished"), trial("b", "TERMINATED", "failed"), trial("c", "ERROR")]
    resumed = trial("d", "RUNNING")
    progress.on_trial_start(0, [*ended, resumed, trial("e", "PENDING")], resumed)
    assert "done 1/5  running 1  failed 2" in lines[-1]
    resumed.status, resumed.last_result = "TERMINATED", {"status": "finished"}
    progress.on_trial_result(1, [], resumed, {"val_bleu": 12.5})
    progress.on_trial_complete(1, [], resumed)
    assert "done 2/5  running 0  failed 2  best val_bleu 12.50" in lines[-1]


def test_a_progress_saved_by_another_driver_counts_afresh():
    lines = []
    progress = SweepProgress(2, "val_bleu", "max", lines.append)
    progress.done = 5  # counted by the driver that saved it
    progress.driver = -1  # restored in another process
    progress.setup()
    run = trial("a", "RUNNING")
    progress.on_trial_start(0, [run], run)
    assert "done 0/2  running 1" in lines[-1]


def test_the_experiments_of_a_searched_sweep_count_on_in_one_driver():
    lines = []
    progress = SweepProgress(3, "val_bleu", "max", lines.append)
    for name in ("search sample", "confirmation seed"):  # one Tune experiment each
        progress.setup()
        run = trial(name, "RUNNING")
        progress.on_trial_start(0, [run], run)
        run.status, run.last_result = "TERMINATED", {"status": "finished"}
        progress.on_trial_complete(1, [run], run)
    assert "done 2/3  running 0" in lines[-1]


class StoppedTuner:
    """A Tuner whose fit fails the way Tune's actor manager fails on ``cause``."""

    def __init__(self, cause):
        self.cause = cause

    def fit(self):
        raise RuntimeError(f"Caught unexpected exception: {self.cause}") from self.cause


def test_a_worker_killed_by_the_memory_monitor_is_told_apart_from_other_errors():
    with pytest.raises(WorkerOutOfMemory, match="node running low on memory"):
        _fit(StoppedTuner(OutOfMemoryError("Task was killed due to the node running low on memory.")))
    with pytest.raises(RuntimeError, match="disk on fire"):
        _fit(StoppedTuner(ValueError("disk on fire")))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is the user's again


def test_the_payload_a_trial_receives_is_typed_at_both_ends_and_plain_inside_tune(tmp_path):
    """The driver builds a TrialPayload, Tune carries it as a plain mapping (its saved state
    must restore it after the driver died), the trial reads it back typed."""
    from ablab.experiments.spec.expand import load_plan
    from ablab.experiments.sweep.mlflow_runs import PreparedSweep
    from ablab.experiments.sweep.trial import TrialPayload
    from ablab.experiments.sweep.tune_runs import payload as make_payload
    from tests.experiments.test_spec import spec, write_spec

    plan = load_plan(write_spec(tmp_path, spec(ablations={"no_ls": {"loss.label_smoothing": 0.0}})))
    trial = plan.trials[1]
    sweep = PreparedSweep("1", "parent", {trial.hash: "run-1"}, [])
    params = make_payload(plan, trial, "sqlite:///x.db", sweep, tmp_path)
    assert isinstance(params, dict) and all(isinstance(k, str) for k in params)
    payload = TrialPayload.of(params)
    assert (payload.name, payload.hash, payload.run_id, payload.parent_run_id) == (
        "no_ls,seed=1",
        trial.hash,
        "run-1",
        "parent",
    )
    assert payload.config["loss"]["label_smoothing"] == 0.0 and payload.cpus == trial.resources.cpus
    assert payload.work_root == str(tmp_path / "work") and TrialPayload.of(payload.params()) == payload


def test_trial_workers_get_the_data_cache_and_mlflow_client_settings_of_the_driver(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    for name, value in {
        "MULTI30K_DIR": "/data/m30k",
        "MLFLOW_TRACKING_TOKEN": "secret",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_RUN_ID": "0123abc",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "SOME_OTHER": "x",
    }.items():
        monkeypatch.setenv(name, value)
    env = worker_env()
    assert env["MULTI30K_DIR"] == "/data/m30k" and env[WORKDIR_ENV] == str(tmp_path)
    assert env["MLFLOW_TRACKING_TOKEN"] == "secret" and env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert not {"MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "SOME_OTHER"} & set(env)


def test_an_address_of_this_machine_counts_as_local_and_another_machines_does_not():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # UDP: no packet sent; picks this machine's interface
        own = probe.getsockname()[0]
    assert _local_addresses({own, "127.0.0.1", "203.0.113.7"}) == {"127.0.0.1", "localhost", own}


def test_the_best_sample_is_chosen_by_finite_scores_in_the_points_own_space():
    def result(lr, bleu, error=None):
        return SimpleNamespace(metrics={"val_bleu": bleu}, config={"trial": {}, "optim.lr": lr}, error=error)

    found = [
        result(0.1, math.nan),
        result(0.01, 7.5),
        result(0.001, 9.0, error=RuntimeError()),
        result(3e-3, 8.0),
    ]
    assert best_values(found, "val_bleu", "max", ["optim.lr"]) == {"optim.lr": 3e-3}  # NaN first is skipped
    assert best_values(found, "val_bleu", "min", ["optim.lr"]) == {"optim.lr": 0.01}
    assert best_values([result(0.1, math.nan)], "val_bleu", "max", ["optim.lr"]) is None
