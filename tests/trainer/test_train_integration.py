"""Real training runs on Multi30k, logged to a real MLflow sqlite store."""

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from ablab.trainer.config.schema import from_dict
from ablab.trainer.errors import ConfigError
from ablab.trainer.run import train
from ablab.trainer.tracking.mlflow_tracker import MlflowTracker
from tests.conftest import tiny_config

pytestmark = pytest.mark.integration

LEARNS = {
    "data": {"train_subset": 6000, "max_tokens": 2048, "vocab_size": 2000},
    "model": {"layers": 2, "d_model": 128, "heads": 4, "ff_dim": 256, "norm": "pre"},
    "schedule": {"name": "warmup_cosine", "warmup_steps": 60},
    "optim": {"lr": 0.002},
    "train": {"epochs": 4, "threads": 2, "log_every": 10},
    "eval": {"val_sentences": 100, "test_sentences": 200, "beam_size": 2},
}


def test_a_small_model_learns_and_everything_is_logged(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    result = train(
        from_dict(LEARNS),
        workdir=tmp_path / "work",
        tracker=MlflowTracker(uri, "integration", run_name="learns"),
    )
    m = result.metrics
    assert result.status == "finished" and m["bleu"] > 1.0 and m["chrf"] > 15.0
    assert m["bleu_lc"] >= m["bleu"] and 0.0 < m["ece"] < 0.5
    assert m["epochs"] == 4.0 and m["params"] > 0 and m["tgt_tokens_per_s"] > 0 and 0 < m["mfu"] < 1

    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ablab.status"] == "finished"
    losses = [
        h.value
        for h in sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda h: h.step)
    ]
    assert len(losses) >= 20 and sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5
    # validation at the global update step of each epoch's end, the epoch beside it
    val_bleu = sorted(client.get_metric_history(run.info.run_id, "val/bleu"), key=lambda h: h.step)
    assert len(val_bleu) == 4 and val_bleu[-1].step == m["steps"] and max(h.value for h in val_bleu) > 0
    epochs = {h.step: h.value for h in client.get_metric_history(run.info.run_id, "epoch")}
    assert [epochs[h.step] for h in val_bleu] == [1.0, 2.0, 3.0, 4.0]
    test = "test/test_2016_flickr"
    for key in (
        "train/nll",
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "val/loss",
        f"{test}/bleu",
        f"{test}/bleu_lc",
        f"{test}/chrf",
        f"{test}/ece",
        f"{test}/nll",
        "run/params",
        "run/mfu",
    ):
        assert key in run.data.metrics, key
    assert {k.split("/")[0] for k in run.data.metrics} == {"train", "val", "test", "run", "epoch", "system"}
    usage = client.get_metric_history(run.info.run_id, "system/process_cpu_percentage")  # each second
    assert len(usage) >= 2 and max(h.value for h in usage) > 10  # it trained on its 2 threads
    assert run.data.metrics[f"{test}/bleu"] == pytest.approx(m["bleu"])  # once, under its test set
    for key in run.data.metrics:  # no metric logged twice at one step
        steps = [h.step for h in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), key
    assert run.data.params["model.d_model"] == "128" and run.data.params["derived.params"] == str(m["params"])
    for tag in (
        "ablab.git_commit",
        "ablab.bleu_signature",
        "ablab.device",
        "ablab.device_kind",
        "ablab.precision",
        "ablab.torch_version",
        "ablab.config_hash",
    ):
        assert run.data.tags[tag], tag
    assert "tok:13a" in run.data.tags["ablab.bleu_signature"]

    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    hyps = (artifacts / "hypotheses" / "test_2016_flickr.txt").read_text().splitlines()
    assert len(hyps) == 200 and sum(bool(h) for h in hyps) > 190
    bins = json.loads(  # valid JSON: an empty bin's mean is null, not NaN
        (artifacts / "calibration" / "reliability_bins.json").read_text(), parse_constant=pytest.fail
    )
    assert len(bins) == 15 and sum(b["count"] for b in bins) == m["test_tokens"]
    with np.load(artifacts / "statistics" / "test_2016_flickr.npz") as stats:
        assert stats["bleu"].shape == (200, 10) and stats["nll"][:, 1].sum() == m["test_tokens"]
        assert stats["calibration"][:, 0].sum() == m["test_tokens"]
    attention = json.loads((artifacts / "attention" / "attention.json").read_text())
    assert set(attention["maps"]) == {"encoder_self", "cross"}
    assert "model:" in (artifacts / "config.yaml").read_text()
    assert "HYP:" in (artifacts / "samples.txt").read_text()
    assert (artifacts / "checkpoints" / "best.pt").stat().st_size > 1000


@pytest.mark.parametrize(
    "lr, factor",
    [(1e25, None), (50.0, 10.0)],  # weights overflow to NaN; a finite loss 10,000x a uniform guess's
    ids=["nan", "exploded"],
)
def test_divergence_is_a_result_not_a_crash(tmp_path, lr, factor):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    cfg = tiny_config(
        schedule={"name": "constant", "warmup_steps": 0},
        optim={"lr": lr, "clip_norm": 0.0},
        train={"epochs": 3, "log_every": 1, "divergence_factor": factor},
    )
    result = train(cfg, workdir=tmp_path / "work", tracker=MlflowTracker(uri, "integration"))
    assert result.status == "diverged" and result.metrics["bleu"] is None
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["ablab.status"] == "diverged" and run.info.status == "FINISHED"
    diverged_at = run.data.metrics["run/diverged_step"]
    curve = client.get_metric_history(result.run_id, "train/loss")
    assert curve and max(h.step for h in curve) <= diverged_at
    assert result.metrics["steps"] == diverged_at


def seq2seq_losses(tmp_path, lr: float) -> list[float]:
    """The training loss curve of the tiny GRU seq2seq at learning rate ``lr``."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    cfg = tiny_config(model={"arch": "seq2seq"}, optim={"lr": lr}, train={"log_every": 2})
    result = train(cfg, workdir=tmp_path / "work", tracker=MlflowTracker(uri, "seq2seq"))
    assert result.status == "finished" and result.metrics["bleu"] is not None
    history = MlflowClient(uri).get_metric_history(result.run_id, "train/loss")
    return [h.value for h in sorted(history, key=lambda h: h.step)]


def test_seq2seq_trains_end_to_end_and_learns(tmp_path):
    losses = seq2seq_losses(tmp_path, 0.01)  # 6.9 -> 5.5 nats in 30 updates; at lr 1e-9 flat (ratio 1.00)
    assert len(losses) >= 10 and np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])


def test_a_max_len_that_drops_every_pair_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.max_len is 4 tokens but every one of the"):
        train(tiny_config(data={"max_len": 4}), workdir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written
