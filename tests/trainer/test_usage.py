"""A run's system metrics: sampled on a thread, logged under MLflow's names at the training
clock's seconds, the process's memory as the kernel counts it."""

import threading
import time
from pathlib import Path

import torch

from ablab.trainer.hardware.usage import UsageSampler


class Collected:
    """A tracker that keeps what is logged."""

    def __init__(self):
        self.logged: list[tuple[int, dict]] = []
        self.more = threading.Event()

    def log_metrics(self, metrics, step):
        self.logged.append((step, metrics))
        self.more.set()


def resident_megabytes() -> float:
    """VmRSS of this process from the kernel's own account."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024 / 1e6


def test_samples_come_on_their_own_thread_at_the_clocks_seconds_under_mlflows_names():
    tracker, started = Collected(), time.monotonic()
    sampler = UsageSampler(
        tracker, lambda: 100 + (time.monotonic() - started) * 1000, torch.device("cpu"), 0.05
    )
    sampler.start()
    deadline = time.monotonic() + 60
    while len(tracker.logged) < 3:
        assert time.monotonic() < deadline, "no samples in 60 s"
        tracker.more.wait(1)
        tracker.more.clear()
    sampler.stop()
    steps = [step for step, _ in tracker.logged]
    assert steps == sorted(steps) and steps[0] >= 100 and len(set(steps)) == len(steps)
    step, first = tracker.logged[0]
    assert {
        "system/cpu_utilization_percentage",
        "system/system_memory_usage_megabytes",
        "system/system_memory_usage_percentage",
        "system/process_cpu_percentage",
        "system/process_memory_megabytes",
        "system/load_average",
    } <= set(first)
    assert 0 <= first["system/cpu_utilization_percentage"] <= 100
    last = tracker.logged[-1][1]["system/process_memory_megabytes"]
    assert abs(last - resident_megabytes()) < 0.1 * resident_megabytes()


def test_no_thread_when_sampling_is_off():
    tracker = Collected()
    sampler = UsageSampler(tracker, time.monotonic, torch.device("cpu"), every=0).start()
    sampler.stop()
    assert tracker.logged == [] and not sampler._thread.is_alive()
