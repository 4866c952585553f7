"""ablab plan's estimates: the precision each trial resolves to here, rates measured on this
machine within a budget, and a sweep's wall time from its lanes."""

import math

import pytest
import torch
import yaml

from ablab.experiments.planning import cost
from ablab.experiments.planning.cost import (
    DEFAULT_MFU,
    RAY_START_SECONDS,
    estimate,
    lanes,
    plan_records,
    sweep_seconds,
)
from ablab.experiments.planning.table import estimate_lines
from ablab.experiments.spec.expand import load_plan
from ablab.trainer.hardware import precision as precision_module
from ablab.trainer.hardware.peak import peak_flops
from ablab.trainer.hardware.precision import resolve
from tests.experiments.helpers import TINY


def write(tmp_path, **body):
    path = tmp_path / "s.yaml"
    spec = {
        "baseline": {"config": TINY},
        "ablations": {"wide": {"model.d_model": 32}},
        "seeds": [1, 2],
        **body,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_plan(path)


def test_each_shape_is_measured_here_and_the_times_add_up(tmp_path):
    plan = write(tmp_path, resources={"cpus": 1})
    estimates = estimate(plan)
    assert [e.precision for e in estimates] == [resolve("auto", torch.device("cpu"))] * 4
    assert all(e.measured and e.train_flops_per_s > 0 and not e.emulated for e in estimates)
    by_name = {t.name: e for t, e in zip(plan.trials, estimates, strict=True)}
    base, wide = by_name["baseline,seed=1"], by_name["wide,seed=1"]
    assert base.train_flops_per_s == by_name["baseline,seed=2"].train_flops_per_s  # one probe per shape
    assert wide.flops > base.flops and min(base.seconds, wide.seconds) > cost.TRIAL_OVERHEAD_SECONDS
    # Two measured rates of tiny models may come out in either order on a busy machine; at one
    # given rate the wider model's trial is the longer.
    fixed = {t.name: e for t, e in zip(plan.trials, estimate(plan, flops_per_second=1e9), strict=True)}
    assert fixed["wide,seed=1"].seconds > fixed["baseline,seed=1"].seconds > cost.TRIAL_OVERHEAD_SECONDS
    records = plan_records(plan, estimates)
    assert records[0]["precision"] == base.precision and records[0]["rate_measured"]
    lines = estimate_lines(plan, records)
    assert "rates measured on this machine for every trial's model" in lines[0]
    assert "2 trials at once" in lines[-1]  # 2 CPUs here, 1 per trial


def test_without_a_probing_budget_an_assumed_mfu_of_this_machines_peak_is_used(tmp_path):
    plan = write(tmp_path, resources={"cpus": 1})
    (first, *_) = estimate(plan, probe_budget=0.0)
    peak = peak_flops(torch.device("cpu"), first.precision, 1)
    assert not first.measured and first.train_flops_per_s == pytest.approx(DEFAULT_MFU * peak)
    (given, *_) = estimate(plan, flops_per_second=5e10)
    assert given.train_flops_per_s == 5e10 and not given.measured
    assert "at the rate given" in estimate_lines(plan, plan_records(plan, [given] * 4))[0]


def test_an_emulated_precision_is_named_in_the_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "native_bf16_cpu", lambda: False)
    spec_config = {**TINY, "train": {**TINY["train"], "precision": "bf16"}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"baseline": {"config": spec_config}, "seeds": [1]}))
    (e,) = estimate(load_plan(path), probe_budget=0.0)
    assert e.precision == "bf16" and e.emulated


def test_a_gpu_trial_has_no_time_here_without_cuda_unless_a_rate_is_given(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = write(tmp_path, resources={"cpus": 1, "gpus": 0.5})
    (e, *_) = estimate(plan)
    assert e.seconds is None and e.precision == "auto" and e.flops > 0 and e.train_flops_per_s is None
    assert "ask for a GPU this machine does not have" in estimate_lines(plan, plan_records(plan, [e] * 4))[0]
    (given, *_) = estimate(plan, flops_per_second=1e14)
    assert given.seconds > 0


def test_a_sweeps_time_places_trials_in_order_on_the_first_free_lane(tmp_path):
    assert sweep_seconds([10, 10, 10], 2) == 20 + RAY_START_SECONDS
    assert sweep_seconds([30, 10, 10, 10], 2) == 30 + RAY_START_SECONDS
    assert sweep_seconds([5] * 4, 1) == 20 + RAY_START_SECONDS
    assert lanes(write(tmp_path, resources={"cpus": 1}), cpus=8) == 8
    assert lanes(write(tmp_path, resources={"cpus": 2}, max_concurrent=3), cpus=16) == 3
    assert lanes(write(tmp_path, resources={"cpus": 1, "gpus": 0.5}), cpus=16, gpus=1) == 2
    assert lanes(write(tmp_path, resources={"cpus": 4}), cpus=2) == 1  # refused elsewhere; never 0
    assert math.isfinite(sweep_seconds([1.0], 1))


def test_a_sequential_plan_says_its_looks_and_the_most_its_later_looks_add(tmp_path):
    from ablab.experiments.planning.table import sequential_lines

    plan = write(tmp_path, seeds={"initial": 3, "max": 6, "step": 3}, max_runs=10)
    records = [{"name": t.name, "est_seconds": 60.0} for t in plan.trials]  # baseline and arm, 3 seeds each
    (line,) = sequential_lines(plan, records)
    assert "looks at 3, 6 seeds; these 6 trials are the first look" in line
    assert "at most 4 more runs (max_runs 10)" in line and "about 6 more trial-minutes" in line
    assert sequential_lines(write(tmp_path, seeds=[1, 2]), records) == []
