"""A trial far slower than planned says so once, with the likeliest cause it can see."""

import pytest
import torch

from ablab.experiments.sweep import pace
from ablab.experiments.sweep.trial import TuneReporter
from ablab.trainer.hardware import precision as precision_module
from ablab.trainer.loop import Progress
from ablab.trainer.tracking import record
from ablab.trainer.tracking.tracker import NullTracker

CPU = torch.device("cpu")


@pytest.fixture
def machine(monkeypatch):
    """Set what the trial sees: native bf16, usable CPUs, cores and the load average."""

    def set_machine(native=True, cpus=2, cores=2, load=0.5):
        monkeypatch.setattr(precision_module, "native_bf16_cpu", lambda: native)
        monkeypatch.setattr(pace, "usable_cpus", lambda: cpus)
        monkeypatch.setattr(pace.os, "cpu_count", lambda: cores)
        monkeypatch.setattr(pace.os, "getloadavg", lambda: (load, load, load))

    return set_machine


def test_slow_means_several_times_below_the_plan():
    assert pace.is_slow(1e9, 4e9) and not pace.is_slow(1e9, 2.9e9)
    assert not pace.is_slow(1e9, None) and not pace.is_slow(0.0, 4e9)  # nothing planned or measured


def test_the_causes_are_named_in_order_with_their_fix(machine):
    machine(native=False, cpus=1, load=9.0)  # every cause at once: the precision comes first
    assert "no native bf16" in pace.likely_cause("bf16", CPU, 4) and "'auto'" in pace.likely_cause(
        "bf16", CPU, 4
    )
    cause = pace.likely_cause("fp32", CPU, 4)
    assert "4 torch threads on 1 usable CPUs" in cause and "train.threads to at most 1" in cause
    machine(native=True, cpus=2, cores=2, load=6.5)
    cause = pace.likely_cause("bf16", CPU, 2)
    assert "load average of 6.5 on 2 cores" in cause and "max_concurrent" in cause
    machine(native=True, cpus=2, cores=2, load=1.0)
    assert "slower machine than the one the plan measured" in pace.likely_cause("bf16", CPU, 2)


class Tags(NullTracker):
    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)


def progress_at(step: int, flops_per_s: float) -> Progress:
    return Progress(step=step, train_seconds=10.0, flops=10.0 * flops_per_s)


def test_the_reporter_checks_once_after_enough_updates_and_puts_the_line_on_the_run(machine, capsys):
    machine(native=False)
    tracker = Tags()
    reporter = TuneReporter(tracker, "heads=8,seed=1", planned_flops_per_s=40e9)
    reporter.on_start(CPU, "bf16")
    reporter.on_step(progress_at(pace.CHECK_AFTER_UPDATES - 1, 2e9), {})  # too early to tell
    assert record.SLOW not in tracker.tags and not reporter.checked
    reporter.on_step(progress_at(pace.CHECK_AFTER_UPDATES, 2e9), {})
    line = tracker.tags[record.SLOW]
    assert line.startswith("heads=8,seed=1 trains at 2.0 GFLOP/s, 20.0x slower than the 40.0 GFLOP/s planned")
    assert "no native bf16" in line
    reporter.on_step(progress_at(pace.CHECK_AFTER_UPDATES + 10, 1e9), {})  # said once
    assert capsys.readouterr().err.count("slower than the") == 1


def test_a_trial_at_its_planned_pace_says_nothing(machine):
    machine()
    tracker = Tags()
    reporter = TuneReporter(tracker, "baseline,seed=1", planned_flops_per_s=40e9)
    reporter.on_step(progress_at(50, 30e9), {})
    assert reporter.checked and record.SLOW not in tracker.tags
