"""A resumed run continues exactly as an uninterrupted one: same weights, bit for bit."""

import pytest
import torch

from ablab.trainer import checkpoint
from ablab.trainer.loop import NullReporter
from ablab.trainer.run import train
from tests.conftest import tiny_config

TIMING = {"setup_seconds", "train_seconds", "wall_seconds", "tgt_tokens_per_s", "mfu", "eval_seconds"}
TIMING |= {"seconds_to_90pct", "mlflow_io_seconds"}


class Crash(Exception):
    pass


class CrashAt(NullReporter):
    """Raises inside the training loop at a given update, like a killed worker."""

    def __init__(self, step):
        self.step = step

    def on_step(self, progress, metrics):
        if progress.step == self.step:
            raise Crash(f"simulated crash at step {self.step}")


class Recorded(CrashAt):
    """Keeps what each logged update reported (and crashes at ``step``, if given)."""

    def __init__(self, step=None):
        super().__init__(step)
        self.logged = {}

    def on_step(self, progress, metrics):
        self.logged[progress.step] = {k: v for k, v in metrics.items() if k not in TIMING}
        super().on_step(progress, metrics)


def final_weights(workdir):
    path = checkpoint.step_checkpoints(workdir / "checkpoints")[0]
    return checkpoint.load(path)


@pytest.mark.parametrize(
    "crash_step, optimizer",
    [(7, "adamw"), (23, "adamw"), (23, "lion"), (23, "adafactor"), (23, "sgd")],
)  # mid-epoch, and in the second epoch; every optimizer's state is checkpointed and restored
def test_resume_equals_uninterrupted(tmp_path, crash_step, optimizer):
    cfg = tiny_config(train={"epochs": 2, "checkpoint_every": 5, "log_every": 1}, optim={"name": optimizer})
    whole = train(cfg, workdir=tmp_path / "whole")

    with pytest.raises(Crash):
        train(cfg, workdir=tmp_path / "resumed", reporter=CrashAt(crash_step))
    saved = checkpoint.step_checkpoints(tmp_path / "resumed" / "checkpoints")
    assert saved and not (tmp_path / "resumed" / "result.json").exists()
    resumed = train(cfg, workdir=tmp_path / "resumed")

    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "resumed")
    assert a["progress"]["step"] == b["progress"]["step"] > crash_step
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert [h["val_loss"] for h in a["progress"]["history"]] == [
        h["val_loss"] for h in b["progress"]["history"]
    ]
    assert {k: v for k, v in whole.metrics.items() if k not in TIMING} == {
        k: v for k, v in resumed.metrics.items() if k not in TIMING
    }


def test_finished_run_returns_its_result(tmp_path):
    cfg = tiny_config(train={"epochs": 1})
    first = train(cfg, workdir=tmp_path)
    again = train(cfg, workdir=tmp_path, reporter=CrashAt(1))  # would crash if it trained again
    assert again.metrics == first.metrics


def test_a_different_config_refuses_the_workdir(tmp_path):
    from ablab.trainer.errors import UserError

    with pytest.raises(Crash):
        train(
            tiny_config(train={"checkpoint_every": 2, "log_every": 1}), workdir=tmp_path, reporter=CrashAt(3)
        )
    with pytest.raises(UserError, match="different config"):
        train(tiny_config(train={"checkpoint_every": 2, "log_every": 1, "seed": 9}), workdir=tmp_path)


def test_a_window_of_logged_updates_cut_by_a_crash_logs_as_uninterrupted(tmp_path):
    """Logged every 3 updates, checkpointed every 4, crashed at 6: the window of updates 4-6 is
    cut by the checkpoint; resumed from it, the window logs as it does without the crash."""
    cfg = tiny_config(train={"epochs": 1, "checkpoint_every": 4, "log_every": 3})
    whole, crashed, resumed = Recorded(), Recorded(6), Recorded()
    train(cfg, workdir=tmp_path / "whole", reporter=whole)
    with pytest.raises(Crash):
        train(cfg, workdir=tmp_path / "resumed", reporter=crashed)
    train(cfg, workdir=tmp_path / "resumed", reporter=resumed)
    assert min(resumed.logged) == 6 and len(resumed.logged) > 2
    assert resumed.logged == {step: m for step, m in whole.logged.items() if step >= 6}
