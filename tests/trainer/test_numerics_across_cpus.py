"""fp32 training computes alike on CPUs of different instruction sets, as the report's hardware
rule assumes (:func:`ablab.analysis.hardware.confounded`): the same seed trained with PyTorch's
kernels held to their portable versions agrees with this CPU's vectorised ones to rounding, and
far closer than the same seed in bf16 does."""

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.integration

TRAIN = """
import json, sys, tempfile
from pathlib import Path
from ablab.trainer.run import train
from ablab.trainer.tracking.tracker import NullTracker
from tests.conftest import tiny_config

class Losses(NullTracker):
    def __init__(self):
        self.losses = []
    def log_metrics(self, metrics, step):
        if "train/loss" in metrics:
            self.losses.append(metrics["train/loss"])

losses = Losses()
config = tiny_config(train={"precision": sys.argv[1], "threads": 1, "log_every": 1, "epochs": 1})
train(config, workdir=Path(tempfile.mkdtemp()), tracker=losses)
print(json.dumps(losses.losses))
"""

PORTABLE = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}
"""PyTorch's, MKL's and oneDNN's kernels held to what any x86-64 CPU has."""


def losses(precision: str, limits: dict[str, str] | None = None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE} | (limits or {})
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", TRAIN, precision], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="this CPU runs the portable kernels already"
)
def test_fp32_on_two_instruction_sets_agrees_to_rounding_and_bf16_does_not():
    vectorised, portable, bf16 = losses("fp32"), losses("fp32", PORTABLE), losses("bf16")
    assert len(vectorised) == len(portable) == len(bf16) >= 20
    across_isas = [abs(a - b) for a, b in zip(vectorised, portable, strict=True)]
    across_precisions = [abs(a - b) for a, b in zip(vectorised, bf16, strict=True)]
    assert max(across_isas[:10]) < 1e-5 and max(across_isas) < 1e-3  # the last bits, drifting slowly
    assert max(across_precisions[:10]) > 100 * max(max(across_isas[:10]), 1e-7)
