"""Metrics delivered on a timer as well as at checkpoints: a run's curves are in the store while
it trains, a store that refuses a write is heard by the run, and steps a killed worker delivered
after its last checkpoint are not logged twice by its resume."""

import threading
import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ablab.trainer.loop import NullReporter
from ablab.trainer.run import train
from ablab.trainer.tracking.mlflow_tracker import MlflowTracker
from tests.conftest import tiny_config

WAIT = 60.0  # seconds an event may take on a busy machine before the test fails


def steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT
    while not (found := condition()):
        assert time.monotonic() < deadline, f"waited {WAIT:.0f} s for {what}"
        time.sleep(0.05)
    return found


def test_logged_steps_reach_the_store_while_the_run_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "live", live_every=0.1)
    run_id = tracker.start({}, {})
    for step in range(1, 6):
        tracker.log_metrics({"train/loss": 1 / step}, step)
    wait_for(lambda: steps(uri, run_id, "train/loss") == [1, 2, 3, 4, 5], "steps 1-5 in the store")
    assert MlflowClient(uri).get_run(run_id).info.status == "RUNNING"  # no flush, no end: the courier
    for step in range(6, 11):
        tracker.log_metrics({"train/loss": 1 / step}, step)
    tracker.end("finished")
    assert steps(uri, run_id, "train/loss") == list(range(1, 11))


def test_a_store_that_refuses_a_write_stops_the_courier_and_the_run_hears_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "refused", live_every=0.1)
    tracker.start({}, {})
    refused = threading.Event()

    def log_batch(*args, **kwargs):
        refused.set()
        raise MlflowException("INVALID_PARAMETER_VALUE: a bug, not an outage")

    tracker.client._client.log_batch = log_batch
    tracker.log_metrics({"train/loss": 1.0}, 1)
    assert refused.wait(WAIT)
    wait_for(lambda: tracker._courier.error is not None, "the courier to stop on the error")
    with pytest.raises(MlflowException, match="a bug, not an outage"):
        tracker.flush()


class Killed(Exception):
    pass


class DeliveredThenKilled(NullReporter):
    """The courier delivers at ``step`` (after the checkpoint before it), then the worker dies."""

    def __init__(self, tracker: MlflowTracker, step: int):
        self.tracker, self.step = tracker, step

    def on_step(self, progress, metrics):
        if progress.step == self.step:
            self.tracker.flush_logged()  # what the courier does on its timer
            raise Killed(f"killed at step {self.step}")


@pytest.mark.integration
def test_steps_a_killed_worker_delivered_after_its_last_checkpoint_are_not_logged_again(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = tiny_config(train={"epochs": 2, "checkpoint_every": 5, "log_every": 1})
    first = MlflowTracker(uri, "killed", live_every=0)
    with pytest.raises(Killed):
        train(cfg, workdir=tmp_path / "work", tracker=first, reporter=DeliveredThenKilled(first, 12))
    assert steps(uri, first.run_id, "train/loss") == list(range(1, 13))  # 11, 12 after the checkpoint at 10
    before = {m.step: m.value for m in MlflowClient(uri).get_metric_history(first.run_id, "train/loss")}

    train(cfg, workdir=tmp_path / "work", tracker=MlflowTracker(uri, "killed", live_every=0))  # from 10
    history = MlflowClient(uri).get_metric_history(first.run_id, "train/loss")
    logged = sorted(m.step for m in history)
    assert logged == list(range(1, logged[-1] + 1)) and logged[-1] > 12  # every step once
    assert {m.step: m.value for m in history if m.step <= 12} == before
