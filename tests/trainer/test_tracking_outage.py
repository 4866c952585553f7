"""The tracker while the store does not answer: training goes on, nothing lost or doubled.

The outage is injected below MLflow's client, in the store's own request path: a real sqlite
store whose ``log_batch`` raises the connection error requests raises for a refused
connection (the real server case is in tests/experiments/test_faults.py)."""

import socket
import time

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ablab.trainer.errors import Unavailable
from ablab.trainer.loop import NullReporter
from ablab.trainer.run import UNSENT, train
from ablab.trainer.tracking import record
from ablab.trainer.tracking.mlflow_tracker import MlflowTracker
from ablab.trainer.tracking.outbox import unreachable
from tests.conftest import tiny_config

pytestmark = pytest.mark.integration


class Outage:
    """Makes ``client.log_batch`` fail while ``down``; with ``store_then_fail`` the request
    reaches the store and only the answer is lost (the case a blind retry would double)."""

    def __init__(self, tracker: MlflowTracker):
        self.down, self.store_then_fail, self.calls = False, False, 0
        real = tracker.client._client.log_batch

        def log_batch(*args, **kwargs):
            self.calls += 1
            if self.store_then_fail:
                self.store_then_fail = False
                real(*args, **kwargs)
                raise requests.ConnectionError("connection reset by peer")
            if self.down:
                raise MlflowException("API request failed") from requests.ConnectionError("refused")
            return real(*args, **kwargs)

        tracker.client._client.log_batch = log_batch


def steps(uri: str, run_id: str, key: str = "loss") -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_training_goes_on_while_the_store_is_down_and_nothing_is_lost_or_doubled(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "outage", patience=30, live_every=0)  # delivered at each flush, as asserted
    run_id = tracker.start({"a": 1}, {})
    outage = Outage(tracker)
    for step in range(1, 11):
        tracker.log_metrics({"loss": 1 / step}, step)
    tracker.flush()
    assert steps(uri, run_id) == list(range(1, 11))

    outage.down = True
    for step in range(11, 31):  # three checkpoints' worth of metrics while down: flush never waits
        tracker.log_metrics({"loss": 1 / step}, step)
        if step % 7 == 0:
            tracker.flush()
    tracker.set_tags({"during": "outage"})
    assert steps(uri, run_id) == list(range(1, 11))
    assert "training goes on" in capsys.readouterr().err

    outage.down, outage.store_then_fail = False, True  # back, but the first answer is lost
    tracker._outbox.retry_at = 0.0  # (the backoff would wait a second)
    tracker.log_metrics({"loss": 1 / 31}, 31)
    tracker.flush()
    tracker._outbox.retry_at = 0.0
    tracker.end("finished")
    run = MlflowClient(uri).get_run(run_id)
    assert steps(uri, run_id) == list(range(1, 32))
    assert run.info.status == "FINISHED" and run.data.tags["during"] == "outage"


def test_a_store_that_never_answers_ends_the_run_with_a_clear_error_and_keeps_the_writes(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "gone", patience=2)
    run_id = tracker.start({}, {})
    outage = Outage(tracker)
    outage.down = True
    for step in range(1, 6):
        tracker.log_metrics({"loss": float(step)}, step)
    tracker.log_text("translations\n", "hypotheses/test.txt")
    with pytest.raises(
        Unavailable, match=r"did not answer for 2 s .* writes to run .* ABLAB_TRACKING_PATIENCE"
    ):
        tracker.end("finished")
    assert outage.calls >= 2  # retried with backoff before giving up
    kept = tmp_path / "unsent.json"
    tracker.save_pending(kept)

    later = MlflowTracker(uri, "gone", patience=2)
    later.resend(kept)
    run = MlflowClient(uri).get_run(run_id)
    assert steps(uri, run_id) == [1, 2, 3, 4, 5] and run.info.status == "FINISHED"
    assert run.data.tags["ablab.status"] == "finished" and not kept.exists()
    assert [a.path for a in MlflowClient(uri).list_artifacts(run_id, "hypotheses")] == ["hypotheses/test.txt"]


def test_unreachable_tells_a_silent_store_from_a_refused_request(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MlflowException) as refused:
        MlflowClient(f"http://127.0.0.1:{port}").get_run("0" * 32)
    assert unreachable(refused.value)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert not unreachable(missing.value)


class FlakyTracker(MlflowTracker):
    """A tracker whose store stops answering when ``down`` is set."""

    down = False

    def _send(self, kind, body):
        if self.down:
            raise requests.ConnectionError("connection refused")
        super()._send(kind, body)


class StoreDownAt(NullReporter):
    def __init__(self, tracker: FlakyTracker, step: int):
        self.tracker, self.step = tracker, step

    def on_step(self, progress, metrics):
        if progress.step == self.step:
            self.tracker.down = True


def test_train_keeps_its_results_when_the_store_is_gone_and_delivers_them_next_time(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = tiny_config(train={"epochs": 2, "log_every": 1})
    flaky = FlakyTracker(uri, "gone", patience=1)
    with pytest.raises(
        Unavailable, match=r"results are kept in .*unsent_tracking\.json; run the same command"
    ):
        train(cfg, workdir=tmp_path / "work", tracker=flaky, reporter=StoreDownAt(flaky, 3))
    assert (tmp_path / "work" / "result.json").is_file() and (tmp_path / "work" / UNSENT).is_file()
    client = MlflowClient(uri)
    assert client.get_run(flaky.run_id).info.status == "RUNNING"

    result = train(cfg, workdir=tmp_path / "work", tracker=MlflowTracker(uri, "gone"))
    run = client.get_run(flaky.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ablab.status"] == result.status == "finished"
    logged = steps(uri, flaky.run_id, "train/loss")
    headline = record.summary(run.data.metrics, run.data.tags[record.TEST_SET])
    assert logged == list(range(1, logged[-1] + 1)) and headline["bleu"] == result.metrics["bleu"]
    assert not (tmp_path / "work" / UNSENT).exists()


def test_a_new_run_on_a_store_that_does_not_answer_fails_at_once(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = MlflowTracker(f"http://127.0.0.1:{port}", "nowhere", patience=600)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"does not answer .*nothing was written. Check the tracking URI"):
        tracker.start({}, {})
    assert time.monotonic() - started < 30  # not the patience a reopened run gets


class Killed(Exception):
    pass


class DownThenKilledAt(StoreDownAt):
    """The store stops answering at ``step``; the worker dies at ``killed``, after checkpoints
    were written in between: the metrics logged since ``step`` exist only in those checkpoints."""

    def __init__(self, tracker: FlakyTracker, step: int, killed: int):
        super().__init__(tracker, step)
        self.killed = killed

    def on_step(self, progress, metrics):
        super().on_step(progress, metrics)
        if progress.step == self.killed:
            raise Killed(f"killed at step {self.killed}")


def test_metrics_undelivered_when_a_worker_dies_after_a_checkpoint_are_delivered_by_its_resume(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = tiny_config(train={"epochs": 2, "checkpoint_every": 5, "log_every": 1})
    flaky = FlakyTracker(uri, "killed", patience=1, live_every=0)  # delivered at checkpoints only
    with pytest.raises(Killed):
        train(cfg, workdir=tmp_path / "work", tracker=flaky, reporter=DownThenKilledAt(flaky, 7, 12))
    assert steps(uri, flaky.run_id, "train/loss") == [1, 2, 3, 4, 5]  # 6-10 only in the checkpoint at 10

    train(cfg, workdir=tmp_path / "work", tracker=MlflowTracker(uri, "killed"))  # resumes at step 10
    logged = steps(uri, flaky.run_id, "train/loss")
    assert logged == list(range(1, logged[-1] + 1)) and logged[-1] > 12  # every step once
