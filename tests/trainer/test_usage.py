"""A run's system metrics: sampled on a thread, logged under MLflow's names at the seconds since
the run began, the process's memory as the kernel counts it; a failed sample skipped."""

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


def test_samples_come_on_their_own_thread_at_the_runs_seconds_under_mlflows_names():
    tracker = Collected()
    sampler = UsageSampler(tracker, torch.device("cpu"), began=time.time() - 100, every=0.05).start()
    deadline = time.monotonic() + 60
    while len(tracker.logged) < 3:
        assert time.monotonic() < deadline, "no samples in 60 s"
        tracker.more.wait(1)
        tracker.more.clear()
    sampler.stop()
    steps = [step for step, _ in tracker.logged]
    assert steps == sorted(steps) and 100 <= steps[0] < 200  # the seconds since the run began
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
    sampler = UsageSampler(tracker, torch.device("cpu"), every=0).start()
    sampler.stop()
    assert tracker.logged == [] and not sampler._thread.is_alive()


def test_a_sample_that_fails_is_skipped_with_one_warning_and_sampling_goes_on(capsys):
    tracker, calls = Collected(), []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise PermissionError("not allowed to read this process")
        return {"process_cpu_percentage": 1.0}

    sampler = UsageSampler(tracker, torch.device("cpu"), every=0.02)
    sampler.process.sample = flaky
    sampler.start()
    assert tracker.more.wait(60)  # a sample after the failed ones
    sampler.stop()
    assert len(calls) >= 3 and capsys.readouterr().err.count("a system-metrics sample failed") == 1
