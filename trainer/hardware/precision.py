"""The precision a run computes in: ``train.precision`` resolved on the device it runs on.

Mixed precision is autocast: parameters and optimizer state stay float32, matmuls run in bf16
(CPU or GPU) or fp16 (GPU only, with a GradScaler). ``auto``, the default, is the fastest
precision that is numerically safe on the device the run actually gets:

- CUDA with compute capability >= 8.0 (A100, L4, H100, ...): bf16;
- older CUDA (V100, T4): fp16 with the GradScaler (bf16 there is emulated);
- a CPU with native bf16 (AMX or AVX512-BF16, :func:`ablab.trainer.hardware.device.native_bf16_cpu`): bf16;
- any other CPU: fp32 (PyTorch emulates bf16 there, 10-20x slower than fp32).

An explicit ``fp32``/``bf16``/``fp16`` is honoured; bf16 where it is emulated runs, and
:func:`emulation_note` says what it costs. A config keeps ``auto`` (its hash is of what the
researcher asked for); the precision it resolved to is recorded on the run
(:data:`ablab.trainer.tracking.record.PRECISION`), where the report reads it.

Attention goes through ``F.scaled_dot_product_attention``; on CPU in bf16 its MATH backend is
pinned, because the CPU flash kernel is 2-3x slower than MATH in bf16 at Multi30k's sentence
lengths (measured).
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ablab.trainer.hardware.device import device_kind, native_bf16_cpu

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AUTO = "auto"


def resolve(choice: str, device: torch.device) -> str:
    """The precision ``train.precision`` = ``choice`` computes in on ``device``."""
    if choice != AUTO:
        return choice
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    return "bf16" if native_bf16_cpu() else "fp32"


def emulation_note(precision: str, device: torch.device) -> str | None:
    """What an explicit bf16 costs where the hardware emulates it; None where it does not."""
    if precision != "bf16" or resolve(AUTO, device) == "bf16":
        return None
    if device.type == "cuda":
        cost, fix = "without the tensor cores fp16 uses", "'auto' (fp16 with a GradScaler here) or 'fp16'"
    else:
        cost = "10-20x slower than fp32 (measured: 13x on the smoke model, 20x on the baseline)"
        fix = "'auto' (fp32 here) or 'fp32'"
    return (
        f"train.precision 'bf16' on {device_kind(device)}, which has no native bf16: PyTorch emulates "
        f"it, {cost}; use train.precision {fix}."
    )


def compute_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the resolved ``precision`` on ``device``, with the SDPA backend chosen for it."""
    stack = contextlib.ExitStack()
    if precision != "fp32":
        stack.enter_context(torch.autocast(device.type, dtype=DTYPES[precision]))
    if device.type == "cpu" and precision == "bf16":
        stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
    return stack
