"""The peak FLOP rate that MFU is measured against: MFU = model FLOPs per second / peak.

- ``ABLAB_PEAK_TFLOPS`` overrides everything (a device the table below does not know).
- A GPU: the data-sheet dense peak of the precision that runs; where that precision has no
  tensor-core rate (bf16 on a V100), the best rate the GPU has.
- A CPU: turbo clocks make a theoretical peak guesswork, so the peak is measured: the best
  rate of a 1024^3 matmul at every precision the CPU runs natively (fp32, and bf16 where
  :func:`ablab.trainer.hardware.device.native_bf16_cpu`), at the given thread count, the fastest kept. An
  emulated precision is never the yardstick, so a run in emulated bf16 has a small MFU, not
  one above 1. The measurement takes well under 2 s (repeats stop after half a second per
  precision; load on the machine can only slow a matmul, hence the best of them) and is
  cached in the ablab cache (``cpu_peak.json``), keyed by CPU model and instruction set,
  thread count and PyTorch version, so a machine is measured once.
"""

from __future__ import annotations

import functools
import json
import os
import time

import torch

from ablab.trainer.checkpoint import atomic_write
from ablab.trainer.data.multi30k import cache_root
from ablab.trainer.hardware.device import cpu_threads, device_kind, native_bf16_cpu

GPU_PEAK_TFLOPS = {
    # dense tensor-core peaks from the vendors' data sheets (fp32 without TF32)
    "H200": {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "fp32": 91.6},
    "A10": {"bf16": 125.0, "fp16": 125.0, "fp32": 31.2},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3},
    "V100": {"bf16": 0.0, "fp16": 125.0, "fp32": 15.7},
    "T4": {"bf16": 0.0, "fp16": 65.0, "fp32": 8.1},
}
CACHE_FILE = "cpu_peak.json"
MATMUL_SIZE = 1024
SECONDS_PER_PRECISION = 0.5


def peak_flops(device: torch.device, precision: str, threads: int | None = None) -> float:
    """Peak FLOP/s for the MFU of a run in the resolved ``precision`` on ``device`` (on a CPU at
    ``threads``, default this process's): 0 on an unknown GPU (MFU is not reported)."""
    override = os.environ.get("ABLAB_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, table in GPU_PEAK_TFLOPS.items():
            if key in name:
                return (table[precision] or max(table.values())) * 1e12
        return 0.0
    return cpu_peak_flops(threads or torch.get_num_threads())


def native_cpu_precisions() -> tuple[str, ...]:
    return ("fp32", "bf16") if native_bf16_cpu() else ("fp32",)


@functools.cache
def cpu_peak_flops(threads: int) -> float:
    """This CPU's peak at ``threads``: cached on disk, else measured (and then cached)."""
    key = f"{device_kind(torch.device('cpu'))}|threads={threads}|torch={torch.__version__}"
    path = cache_root() / CACHE_FILE
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached.get(key), (int, float)) and cached[key] > 0:
        return float(cached[key])
    peak = max(measure_matmul(precision, threads) for precision in native_cpu_precisions())
    try:  # a concurrent writer may win; its entries are measured again by whoever misses them
        atomic_write(path, json.dumps({**cached, key: peak}, indent=1).encode())
    except OSError:
        pass  # a read-only cache: measured again next time, nothing else changes
    return peak


def measure_matmul(precision: str, threads: int, n: int = MATMUL_SIZE) -> float:
    """The best FLOP/s of ``n^3`` matmuls at ``precision`` on ``threads`` CPU threads, repeated for
    about :data:`SECONDS_PER_PRECISION` after one warm-up."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    with cpu_threads(threads):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        best, began = 0.0, time.perf_counter()
        while time.perf_counter() - began < SECONDS_PER_PRECISION:
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
        return best
