"""Which device a run trains on, also where a scheduler assigned a GPU that PyTorch cannot use
(a trial with resources.gpus on a node whose PyTorch is the CPU build)."""

import pytest
import torch

from ablab.trainer.errors import ConfigError
from ablab.trainer.hardware.device import assigned_gpus, device_kind, names_a_cpu, pick_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_falls_back_to_the_cpu_and_says_why_when_a_gpu_was_assigned(no_cuda, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert assigned_gpus() == "0"
    assert pick_device("auto", "bf16") == torch.device("cpu")
    line = capsys.readouterr().err
    assert (
        "GPU 0 was assigned to this process (CUDA_VISIBLE_DEVICES)" in line and "training on the CPU" in line
    )


def test_nothing_is_said_when_no_gpu_was_assigned(no_cuda, monkeypatch, capsys):
    for unset in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", unset)
        assert assigned_gpus() == "" and pick_device("auto", "fp32") == torch.device("cpu")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert pick_device("auto", "fp32") == torch.device("cpu")
    assert capsys.readouterr().err == ""


def test_a_config_that_demands_cuda_is_refused_clearly(no_cuda, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with pytest.raises(
        ConfigError, match=r"train.device is 'cuda' but PyTorch finds no CUDA device \(GPU 1 was"
    ):
        pick_device("cuda", "bf16")
    with pytest.raises(ConfigError, match="fp16' needs a CUDA device"):
        pick_device("auto", "fp16")


def test_this_cpus_kind_is_told_apart_from_a_gpus():
    """The report compares fp32 runs across CPUs by this test of a recorded kind: the kind this
    CPU records must pass it, and GPU names must not."""
    assert names_a_cpu(device_kind(torch.device("cpu")))
    assert names_a_cpu("Intel(R) Xeon(R) Platinum 8480+ (AMX)") and names_a_cpu("Neoverse-V1 (SVE256)")
    for gpu in ("NVIDIA H100 80GB HBM3", "Tesla T4", "AMD Instinct MI300X", "NVIDIA A100 (MIG 1g.10gb)"):
        assert not names_a_cpu(gpu)
