"""The peak MFU is measured against: on a CPU the best native matmul rate, measured in well under
2 s and once per machine (cached), never an emulated precision's; on a GPU the data sheet's."""

import json
import time

import pytest
import torch

from ablab.trainer.hardware import peak
from ablab.trainer.hardware.device import device_kind


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    peak.cpu_peak_flops.cache_clear()
    yield tmp_path / "ablab" / peak.CACHE_FILE
    peak.cpu_peak_flops.cache_clear()


def test_the_cpu_peak_is_measured_fast_once_and_then_read_from_the_cache(fresh_cache, monkeypatch):
    began = time.perf_counter()
    first = peak.cpu_peak_flops(1)
    seconds = time.perf_counter() - began
    # each native precision is timed for half a second: the probe can never take minutes
    assert seconds < 1.0 + 2 * peak.SECONDS_PER_PRECISION * len(peak.native_cpu_precisions())
    assert 1e9 < first < 1e14  # between a slow laptop core and far beyond any CPU
    stored = json.loads(fresh_cache.read_text())
    key = f"{device_kind(torch.device('cpu'))}|threads=1|torch={torch.__version__}"
    assert stored == {key: first}

    def no_measuring(*args):
        raise AssertionError("measured again although cached")

    monkeypatch.setattr(peak, "measure_matmul", no_measuring)
    peak.cpu_peak_flops.cache_clear()
    assert peak.cpu_peak_flops(1) == first  # read back from disk, in a new process alike


def test_each_thread_count_is_its_own_entry(fresh_cache, monkeypatch):
    monkeypatch.setattr(peak, "measure_matmul", lambda precision, threads: threads * 1e10)
    assert peak.cpu_peak_flops(1) == 1e10 and peak.cpu_peak_flops(2) == 2e10
    assert len(json.loads(fresh_cache.read_text())) == 2


def test_an_emulated_precision_is_never_the_yardstick(fresh_cache, monkeypatch):
    """Without native bf16 only fp32 is measured (an emulated bf16 matmul is 100x slower, and a
    peak taken from it made MFU read 13); with it, the faster of the two."""
    rates = {"fp32": 2e11, "bf16": 4e11}
    measured = []
    monkeypatch.setattr(peak, "measure_matmul", lambda p, t: measured.append(p) or rates[p])
    monkeypatch.setattr(peak, "native_bf16_cpu", lambda: False)
    assert peak.cpu_peak_flops(2) == 2e11 and measured == ["fp32"]
    peak.cpu_peak_flops.cache_clear()
    fresh_cache.unlink()
    monkeypatch.setattr(peak, "native_bf16_cpu", lambda: True)
    assert peak.cpu_peak_flops(2) == 4e11 and measured == ["fp32", "fp32", "bf16"]


def test_a_gpu_peak_comes_from_the_data_sheet(monkeypatch):
    monkeypatch.delenv("ABLAB_PEAK_TFLOPS", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")
    cuda = torch.device("cuda")
    assert peak.peak_flops(cuda, "fp16") == 125e12 and peak.peak_flops(cuda, "fp32") == 15.7e12
    assert peak.peak_flops(cuda, "bf16") == 125e12  # emulated there: its best rate, not zero
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak.peak_flops(cuda, "bf16") == 0.0  # unknown: MFU is not reported
    monkeypatch.setenv("ABLAB_PEAK_TFLOPS", "100")
    assert peak.peak_flops(cuda, "bf16") == 100e12
