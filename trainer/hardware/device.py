"""Where the model computes, and what kind of hardware that is.

- :func:`pick_device`: the device ``train.device`` names (``auto``: CUDA where PyTorch finds it).
- :func:`native_bf16_cpu`: whether this CPU multiplies bf16 in hardware (AMX tiles or
  AVX512-BF16) and PyTorch's oneDNN uses it. Without it PyTorch emulates bf16 matmuls, 13x
  slower than fp32 end to end on the smoke model, 20x on the baseline (``benchmarks/throughput.py``).
- :func:`device_kind`: the GPU's name, or the CPU's model and instruction set
  (``AMD EPYC (AVX512-BF16)``); :func:`names_a_cpu` tells the two apart in a recorded kind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import sys
from pathlib import Path

import torch

from ablab.trainer.errors import ConfigError


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
            "train.precision 'fp16' needs a CUDA device and none is visible; use 'auto', 'bf16' or 'fp32'."
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


@functools.cache
def native_bf16_cpu() -> bool:
    """This CPU has bf16 matmul instructions (AMX tiles or AVX512-BF16) and oneDNN may use them
    (``ONEDNN_MAX_CPU_ISA`` can forbid it). PyTorch's probes for this are private; they are
    read here only, and a PyTorch without them counts as no native bf16."""
    try:
        instructions = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
        return bool(instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def cpu_isa() -> str:
    """The instruction set PyTorch computes with on this CPU: ``AMX`` or ``AVX512-BF16`` where
    bf16 is native, else PyTorch's vector capability (``AVX512``, ``AVX2``, ``DEFAULT``, ...)."""
    if native_bf16_cpu():
        return "AMX" if torch.cpu._is_amx_tile_supported() else "AVX512-BF16"
    return torch.backends.cpu.get_cpu_capability()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what the platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def device_kind(device: torch.device) -> str:
    """What the run computed on, as far as its numbers and speed go: the GPU's name, or the CPU's
    model with its instruction set (``AMD EPYC (AVX2)``); thread counts are not part of it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({cpu_isa()})"


CPU_ISA = re.compile(r"AMX|AVX512-BF16|AVX512|AVX2|DEFAULT|NO AVX|VSX|Z VECTOR|SVE\d*")
"""What :func:`cpu_isa` may say: the bf16 instructions, or one of PyTorch's vector capabilities."""


def names_a_cpu(kind: str) -> bool:
    """Whether a :func:`device_kind` as recorded (``AMD EPYC (AVX2)``) is a CPU's, not a GPU's."""
    model, _, isa = kind.rpartition(" (")
    return bool(model) and isa.endswith(")") and CPU_ISA.fullmatch(isa[:-1]) is not None


@contextlib.contextmanager
def cpu_threads(n: int):
    """Torch computes on ``n`` CPU threads inside the block, on as many as before after it."""
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def describe(device: torch.device) -> str:
    """The device kind with this process's CPU threads (``AMD EPYC (AVX2), 2 threads``)."""
    if device.type == "cuda":
        return device_kind(device)
    return f"{device_kind(device)}, {torch.get_num_threads()} threads"
