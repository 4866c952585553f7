"""torch.compile is an option of the trainer: a compiled model trains like the eager one."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

from ablab.trainer.build import build_corpus
from ablab.trainer.run import build_trainer
from tests.conftest import tiny_config


@pytest.mark.integration
@pytest.mark.skipif(
    "ATEN_CPU_CAPABILITY" in os.environ,
    reason="ATen's kernels held below the CPU's: Inductor's default vector width then disagrees "
    "with ATen's and the compiled model's loss is NaN (a real AVX2 CPU has both at AVX2; with "
    "cpp.simdlen 256 or 512 set under the variable it trains like eager)",
)
def test_compiled_model_trains_like_eager():
    losses = {}
    for compiled in (False, True):
        cfg = tiny_config(
            model={"layers": 1, "d_model": 16, "heads": 2, "ff_dim": 16, "dropout": 0.0},
            train={"compile": compiled, "precision": "fp32"},
        )
        trainer = build_trainer(
            cfg, build_corpus(cfg.data, cfg.eval), torch.device("cpu"), Path(tempfile.mkdtemp())
        )
        losses[compiled] = [trainer.update([group])["train_loss"] for group in trainer.epoch_batches(0)[:3]]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
