import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ablab.trainer.tracking.mlflow_tracker import MlflowTracker
from ablab.trainer.tracking.store import absolute_uri, artifact_root, default_tracking_uri


def test_default_uri_is_absolute_sqlite_under_mlruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rel/store.db")
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/rel/store.db"
    assert absolute_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert (
        artifact_root(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
        == (tmp_path / "mlruns" / "artifacts").as_uri()
    )


@pytest.mark.integration
def test_run_lifecycle_on_a_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracker = MlflowTracker(uri, "unit", run_name="r1")
    run_id = tracker.start(
        {f"p{i}": i for i in range(150)} | {"betas": (0.9, 0.98)}, {"ablab.arch": "transformer"}
    )
    for step in range(1, 1201):
        tracker.log_metrics({"train_loss": 1.0 / step, "skip": None}, step=step)
    tracker.log_text("hello\n", "samples.txt")
    tracker.log_json({"a": [1, 2]}, "calibration/bins.json")
    tracker.end("diverged")

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ablab.status"] == "diverged"
    assert run.info.run_name == "r1" and run.data.params["p149"] == "149"
    assert json.loads(run.data.params["betas"]) == [0.9, 0.98]
    history = client.get_metric_history(run_id, "train_loss")
    assert len(history) == 1200 and sorted(m.step for m in history) == list(range(1, 1201))
    assert "skip" not in run.data.metrics
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "samples.txt").read_text() == "hello\n"
    assert json.loads((artifacts / "calibration" / "bins.json").read_text()) == {"a": [1, 2]}
    assert artifacts.is_relative_to(tmp_path / "mlruns" / "artifacts")

    again = MlflowTracker(uri, "unit")
    assert again.start({}, {}, run_id=run_id) == run_id
    reopened = client.get_run(run_id)  # its earlier 'diverged' is not what it is doing now
    assert reopened.info.status == "RUNNING" and reopened.data.tags["ablab.status"] == "running"
    again.end("killed")
    assert client.get_run(run_id).info.status == "KILLED"
    assert len(client.search_runs([run.info.experiment_id])) == 1
