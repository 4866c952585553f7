"""The training loop's mechanics: accumulation, clipping, limits, early stopping."""

import numpy as np
import pytest
import torch

from ablab.trainer.build import build_corpus
from ablab.trainer.loop import NullReporter
from ablab.trainer.optim.schedules import warmup_cosine
from ablab.trainer.run import build_trainer, convergence, train
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def corpus():
    cfg = tiny_config()
    return build_corpus(cfg.data, cfg.eval)


def trainer_for(corpus, tmp_path, **sections):
    cfg = tiny_config(**sections)
    return build_trainer(cfg, corpus, torch.device("cpu"), tmp_path)


def test_accumulated_batches_equal_one_combined_batch(corpus, tmp_path):
    """Loss is normalized by the target tokens of the whole accumulation group.

    Adam with eps = 1 makes the update ~ lr * g / (|g| + 1), smooth in the gradient, so equal
    updates mean equal accumulated gradients (with a small eps the first step is ~ lr * sign(g)).
    """
    exact = {
        "model": {"dropout": 0.0},
        "train": {"precision": "fp32"},
        "optim": {"clip_norm": 0.0, "eps": 1.0, "weight_decay": 0.0, "lr": 3.0},
    }
    a, b = trainer_for(corpus, tmp_path / "a", **exact), trainer_for(corpus, tmp_path / "b", **exact)
    before = [p.detach().clone() for p in a.model.parameters()]
    first, second = np.arange(0, 6), np.arange(6, 14)
    ma = a.update([first, second])
    mb = b.update([np.concatenate([first, second])])
    assert ma["train_loss"] == pytest.approx(mb["train_loss"], rel=1e-5)
    assert ma["grad_norm"] == pytest.approx(mb["grad_norm"], rel=1e-4)
    for p0, pa, pb in zip(before, a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa - p0, pb - p0, rtol=1e-3, atol=1e-7)


def test_logged_gradient_norm_is_before_clipping(corpus, tmp_path):
    t = trainer_for(corpus, tmp_path, optim={"clip_norm": 1e-3})
    before = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    metrics = t.update([np.arange(0, 20)])
    assert metrics["grad_norm"] > 1e-2  # far above the clip: the raw norm is what is logged
    assert metrics["lr"] == pytest.approx(0.003 / 10)  # constant schedule, step 1 of 10 warmup
    assert any(not torch.equal(before[n], p) for n, p in t.model.named_parameters())


class Logged(NullReporter):
    def __init__(self):
        self.updates = []  # (step, target tokens so far, the metrics logged at it)

    def on_step(self, progress, metrics):
        self.updates.append((progress.step, progress.tgt_tokens, metrics))


def test_a_logged_loss_is_the_token_weighted_mean_of_the_updates_since_the_last_log(tmp_path):
    """Logged every update, a run shows each update's own loss and tokens; logged every 3, the
    same run (same seed, nothing else changed) shows the windows of 3 as one."""
    each, windows = Logged(), Logged()
    train(tiny_config(train={"epochs": 1, "log_every": 1}), workdir=tmp_path / "each", reporter=each)
    train(tiny_config(train={"epochs": 1, "log_every": 3}), workdir=tmp_path / "three", reporter=windows)
    tokens = np.diff([0] + [seen for _, seen, _ in each.updates])
    per_update = {key: np.array([m[key] for *_, m in each.updates]) for key in ("train_loss", "train_nll")}
    assert len(windows.updates) == len(each.updates) // 3 > 2
    for step, _, metrics in windows.updates:
        window = slice(step - 3, step)
        for key, values in per_update.items():
            expected = np.average(values[window], weights=tokens[window])
            assert metrics[key] == pytest.approx(expected, rel=1e-9), (step, key)
        assert metrics["lr"] == each.updates[step - 1][2]["lr"]  # the logged update's own
        assert metrics["grad_norm"] == each.updates[step - 1][2]["grad_norm"]
        assert metrics["tgt_tokens_per_s"] > 0


def test_step_limit_stops_mid_epoch_and_counts_fractional_epochs(tmp_path):
    result = train(tiny_config(train={"epochs": None, "max_steps": 7}), workdir=tmp_path)
    assert result.metrics["steps"] == 7 and 0 < result.metrics["epochs"] < 1


def test_time_limit_stops_training(tmp_path):
    result = train(tiny_config(train={"epochs": 1000, "max_minutes": 0.05}), workdir=tmp_path)
    assert result.status == "finished" and result.metrics["epochs"] < 1000
    assert result.metrics["wall_seconds"] >= 3.0  # no upper bound: a busy machine may take any time


def test_a_schedule_that_ends_with_the_minutes_is_fitted_to_the_pace_so_far(corpus, tmp_path):
    """No total_steps and no step or epoch limit: the cosine ends where the minutes end, at the
    update the pace so far reaches there, so it reaches lr_min on a fast machine and a slow one."""
    t = trainer_for(
        corpus,
        tmp_path,
        schedule={"name": "warmup_cosine", "warmup_steps": 5, "lr_min": 0.0},
        train={"epochs": None, "max_minutes": 1.0},
    )
    assert t.ends_with_time
    t.progress.step, t.progress.elapsed_seconds = 50, 30.0  # half the minute: 100 updates in it
    lr = t.update([np.arange(0, 8)])["lr"]
    assert lr == pytest.approx(warmup_cosine(51, lr_max=0.003, warmup=5, total=100))
    t.progress.elapsed_seconds = 90.0  # past the minute: the schedule ends at this update, at lr_min
    assert t.update([np.arange(8, 16)])["lr"] == pytest.approx(0.0, abs=1e-12)
    fixed = trainer_for(
        corpus, tmp_path / "fixed", train={"epochs": None, "max_minutes": 1.0, "max_steps": 80}
    )
    assert not fixed.ends_with_time  # a step limit sets the schedule's end


def test_early_stopping_after_stale_epochs(tmp_path):
    # learning rate ~0: validation BLEU cannot improve after the first epoch
    result = train(
        tiny_config(optim={"lr": 1e-12}, train={"epochs": 10, "early_stopping": 2}), workdir=tmp_path
    )
    assert result.metrics["epochs"] == 3.0 and result.metrics["best_epoch"] == 1.0


def test_convergence_is_first_epoch_at_ninety_percent_of_best():
    history = [{"epoch": e, "seconds": 10.0 * e, "val_bleu": b} for e, b in enumerate([5, 20, 27, 30, 29], 1)]
    assert convergence(history) == {"epochs_to_90pct": 3, "seconds_to_90pct": 30.0}
    assert convergence([]) == {"epochs_to_90pct": None, "seconds_to_90pct": None}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_fp16_without_cuda_is_refused_before_anything_is_written(tmp_path):
    from ablab.trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16"):
        train(tiny_config(train={"precision": "fp16"}), workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()
