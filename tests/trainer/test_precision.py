"""train.precision 'auto': what it resolves to on each kind of device, what an emulated bf16 is
told to cost, what a run records, and that the hardware is not part of a trial's identity."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablab.trainer.config.schema import config_hash
from ablab.trainer.hardware import device as device_module
from ablab.trainer.hardware import precision as precision_module
from ablab.trainer.hardware.precision import emulation_note, resolve
from ablab.trainer.run import train
from ablab.trainer.tracking import record
from ablab.trainer.tracking.tracker import NullTracker
from tests.conftest import KERNEL_LIMITS, tiny_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Set whether the CPU counts as having native bf16."""

    def set_native(native: bool) -> None:
        monkeypatch.setattr(precision_module, "native_bf16_cpu", lambda: native)

    return set_native


@pytest.fixture
def gpu_capability(monkeypatch):
    def set_major(major: int) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 0))
        monkeypatch.setattr(precision_module, "device_kind", lambda device: f"a GPU of compute {major}.0")

    return set_major


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU flags Linux reports")
@pytest.mark.skipif(
    bool(KERNEL_LIMITS & set(os.environ)),
    reason="PyTorch's kernels are held below what the CPU flags say (the next test covers that)",
)
def test_native_bf16_is_what_the_cpu_flags_say():
    """PyTorch's private probes, wrapped in one function, agree with the kernel's CPU flags."""
    flags = cpu_flags()
    expected = bool({"amx_bf16", "avx512_bf16"} & flags)
    assert device_module.native_bf16_cpu() is expected
    assert device_module.cpu_isa() in (("AMX", "AVX512-BF16") if expected else ("AVX512", "AVX2", "DEFAULT"))


def test_a_cpu_limited_to_avx2_kernels_has_no_native_bf16():
    """oneDNN told to stop at AVX2 (the way to try an AVX2-only CPU's slow path on any CPU)
    leaves no native bf16, so 'auto' trains in fp32 there."""
    code = (
        "from ablab.trainer.hardware.device import native_bf16_cpu, cpu_isa; "
        "print(native_bf16_cpu(), cpu_isa())"
    )
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "AVX2"]


def test_a_missing_private_probe_counts_as_no_native_bf16(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    device_module.native_bf16_cpu.cache_clear()
    try:
        assert device_module.native_bf16_cpu() is False
    finally:
        monkeypatch.undo()
        device_module.native_bf16_cpu.cache_clear()


def test_auto_on_each_kind_of_device(cpu_bf16, gpu_capability):
    cpu_bf16(True)
    assert resolve("auto", CPU) == "bf16"
    cpu_bf16(False)
    assert resolve("auto", CPU) == "fp32"
    for major, expected in ((7, "fp16"), (8, "bf16"), (9, "bf16")):  # V100/T4, A100, H100
        gpu_capability(major)
        assert resolve("auto", CUDA) == expected
    for explicit in ("fp32", "bf16", "fp16"):  # an explicit precision is honoured everywhere
        assert resolve(explicit, CPU) == resolve(explicit, CUDA) == explicit


def test_an_emulated_bf16_is_told_what_it_costs_and_a_native_one_is_not(cpu_bf16, gpu_capability):
    cpu_bf16(False)
    note = emulation_note("bf16", CPU)
    assert "no native bf16" in note and "10-20x slower than fp32" in note and "'auto' (fp32 here)" in note
    assert emulation_note("fp32", CPU) is None
    cpu_bf16(True)
    assert emulation_note("bf16", CPU) is None
    gpu_capability(7)
    assert "'auto' (fp16 with a GradScaler here)" in emulation_note("bf16", CUDA)
    gpu_capability(8)
    assert emulation_note("bf16", CUDA) is None


class Tags(NullTracker):
    def __init__(self):
        self.tags: dict[str, str] = {}

    def start(self, params, tags, run_id=None):
        self.tags.update(tags)

    def set_tags(self, tags):
        self.tags.update(tags)


@pytest.mark.parametrize(("native", "asked", "resolved"), [(False, "auto", "fp32"), (True, "auto", "bf16")])
def test_a_run_records_the_precision_it_resolved_to(cpu_bf16, tmp_path, native, asked, resolved):
    cpu_bf16(native)
    tracker = Tags()
    result = train(
        tiny_config(train={"precision": asked, "max_steps": 3, "epochs": None}),
        workdir=tmp_path,
        tracker=tracker,
    )
    assert tracker.tags[record.PRECISION] == result.metrics["precision"] == resolved
    assert tracker.tags[record.DEVICE_KIND] == result.metrics["device_kind"] == device_module.device_kind(CPU)
    assert record.PRECISION_NOTE not in tracker.tags
    assert 0 < result.metrics["mfu"] < 1


def test_an_explicit_bf16_where_it_is_emulated_runs_and_says_so_once(cpu_bf16, tmp_path, capsys):
    cpu_bf16(False)
    tracker = Tags()
    result = train(
        tiny_config(train={"precision": "bf16", "max_steps": 3, "epochs": None}),
        workdir=tmp_path,
        tracker=tracker,
    )
    assert result.status == "finished" and tracker.tags[record.PRECISION] == "bf16"
    assert "no native bf16" in tracker.tags[record.PRECISION_NOTE]
    assert capsys.readouterr().err.count("no native bf16") == 1


def test_the_hardware_is_not_part_of_a_trials_identity(cpu_bf16):
    """A trial is what the researcher asked for: 'auto' hashes alike whatever it resolves to, so a
    finished sweep run again on other hardware finds its trials done (the report tells runs of
    different hardware apart); an explicit precision is another trial."""
    config = tiny_config()
    cpu_bf16(True)
    on_native = (config_hash(config), resolve(config.train.precision, CPU))
    cpu_bf16(False)
    on_avx2 = (config_hash(config), resolve(config.train.precision, CPU))
    assert on_native[0] == on_avx2[0] and on_native[1] != on_avx2[1]
    assert config_hash(tiny_config(train={"precision": "fp32"})) != on_native[0]
