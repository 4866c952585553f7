"""Where and in what precision the model computes, and that hardware's peak FLOP rate.

Mixed precision is autocast: parameters and optimizer state stay float32, matmuls run in
bf16 (CPU or GPU) or fp16 (GPU, with a GradScaler). Attention goes through
``F.scaled_dot_product_attention``; on CPU in bf16 its MATH backend is pinned, because the
CPU flash kernel is 2-3x slower than MATH in bf16 at Multi30k's sentence lengths (measured).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from trainer.errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

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


def assigned_gpus() -> str:
    """The GPUs a scheduler assigned to this process (``CUDA_VISIBLE_DEVICES``, which Ray sets
    for a trial with ``resources.gpus``); '' where none were."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return "" if value in ("-1", "NoDevFiles") else value


def pick_device(choice: str, precision: str) -> torch.device:
    """The device ``train.device`` names; refuses what it cannot run (fp16 needs CUDA).

    With ``auto``, CUDA where PyTorch finds it, else the CPU; where a scheduler assigned this
    process a GPU that PyTorch cannot use (a CPU build, no driver), the CPU, said on stderr.
    With ``cuda`` and no CUDA device, a clear refusal."""
    gpus = assigned_gpus()
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            assigned = f" (GPU {gpus} was assigned to this process)" if gpus else ""
            raise ConfigError(
                f"train.device is 'cuda' but PyTorch finds no CUDA device{assigned}; install PyTorch's "
                "CUDA build where the GPU is, or use train.device 'auto' (falls back to the CPU) or 'cpu'."
            )
        return torch.device("cuda")
    if precision == "fp16":
        raise ConfigError(
            "train.precision 'fp16' needs a CUDA device and none is visible; use 'bf16' or 'fp32'."
        )
    if gpus and choice == "auto":
        print(
            f"ablab: device: GPU {gpus} was assigned to this process (CUDA_VISIBLE_DEVICES) but PyTorch "
            f"{torch.__version__} finds no CUDA device; training on the CPU (train.device 'cuda' would "
            "refuse instead).",
            file=sys.stderr,
            flush=True,
        )
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def compute_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device``, with the SDPA backend chosen for it."""
    stack = contextlib.ExitStack()
    if precision != "fp32":
        stack.enter_context(torch.autocast(device.type, dtype=DTYPES[precision]))
    if device.type == "cpu" and precision == "bf16":
        stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
    return stack


@functools.cache
def _measured_cpu_flops(precision: str, threads: int) -> float:
    """The best rate of five 2048^3 matmuls at ``precision``: this CPU's achievable peak.

    Other load on the machine can only slow a measurement down, so the fastest is kept.
    """
    dtype = DTYPES[precision] if precision != "fp16" else torch.float32
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def peak_flops(device: torch.device, precision: str) -> float:
    """Peak FLOP/s for MFU: ``ABLAB_PEAK_TFLOPS`` if set; data-sheet peak on known GPUs.

    CPU turbo clocks make a theoretical peak guesswork, so on CPU the peak is the measured
    rate of a large matmul at the same precision and thread count (MFU on CPU is thus the
    share of what the matmul library achieves). 0 on an unknown GPU (MFU is not reported).
    """
    override = os.environ.get("ABLAB_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, table in GPU_PEAK_TFLOPS.items():
            if key in name:
                return table[precision] * 1e12
        return 0.0
    return _measured_cpu_flops(precision, torch.get_num_threads())
