"""A trial that trains far slower than planned says so, with its likely cause and the fix.

The sweep driver plans each trial's training rate (FLOP/s) on its own machine
(:mod:`ablab.experiments.planning.cost`: measured there, or ``ablab run --tflops``). After
:data:`CHECK_AFTER_UPDATES` updates a trial compares the rate it measures with that plan,
once; at less than 1/:data:`SLOW_FACTOR` of it, one line names the likeliest cause it can see
from inside its process, in this order:

1. an emulated precision (bf16 on a CPU without native bf16: 10-20x slower than fp32);
2. more torch threads than the CPUs the process may run on (threads wait on each other);
3. a busy machine: more runnable processes (1-minute load average) than cores;
4. none of these: a slower machine than the one the plan measured on, or cores shared with
   something the process cannot see.

The line goes to the trial's stderr and onto its run (tag :data:`ablab.trainer.tracking.record.SLOW`), from
where the sweep's progress prints it (:mod:`ablab.experiments.sweep.progress`).
"""

from __future__ import annotations

import os

import torch

from ablab.trainer.hardware.precision import emulation_note

SLOW_FACTOR = 3.0
CHECK_AFTER_UPDATES = 20


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def likely_cause(precision: str, device: torch.device, threads: int) -> str:
    """Why a trial on ``device`` in ``precision`` with ``threads`` torch threads may run slow."""
    note = emulation_note(precision, device)
    if note:
        return note
    cpus = usable_cpus()
    if device.type == "cpu" and threads > cpus:
        return (
            f"the trial runs {threads} torch threads on {cpus} usable CPUs, so they wait on each other; "
            f"set train.threads to at most {cpus} (or resources.cpus, which sets it)"
        )
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        return (
            f"the machine is busy: a load average of {load:.1f} on {cores} cores, so the trials compete "
            "with each other or with other processes; lower max_concurrent, raise resources.cpus, or stop "
            "what else runs"
        )
    return (
        "none seen from inside the trial: it may run on a slower machine than the one the plan measured "
        "(a cluster node), or share its cores with processes in other containers"
    )


def slow_line(trial: str, measured: float, planned: float, cause: str) -> str:
    """The one line a slow trial prints and puts on its run."""
    return (
        f"{trial} trains at {measured / 1e9:,.1f} GFLOP/s, {planned / measured:.1f}x slower than the "
        f"{planned / 1e9:,.1f} GFLOP/s planned; likely cause: {cause}"
    )


def is_slow(measured: float, planned: float | None) -> bool:
    return bool(planned) and measured > 0 and measured * SLOW_FACTOR < planned
