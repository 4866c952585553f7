"""The run's length in updates: one rule for the trainer, the plan and the progress bar."""

import pytest

from ablab.trainer.optim.run_length import (
    NO_PACE_YET,
    planned_epochs,
    planned_updates,
    schedule_updates,
    updates_in_time,
    updates_per_epoch,
)
from tests.conftest import tiny_config


def test_limits_in_updates_epochs_and_for_the_schedule():
    assert updates_per_epoch(tiny_config(train={"accum_steps": 4}), 10) == 3  # the partial one counts
    assert planned_updates(tiny_config(train={"epochs": 3}), 10) == 30
    assert planned_updates(tiny_config(train={"epochs": 3, "accum_steps": 4}), 10) == 9
    assert planned_updates(tiny_config(train={"epochs": 3, "max_steps": 12}), 10) == 12
    assert planned_updates(tiny_config(train={"epochs": None, "max_minutes": 1.0}), 10) is None
    assert planned_epochs(tiny_config(train={"epochs": 3, "max_steps": 12}), 10) == pytest.approx(1.2)
    assert planned_epochs(tiny_config(train={"epochs": None, "max_minutes": 1.0}), 10) is None
    assert schedule_updates(tiny_config(schedule={"total_steps": 99}), 10) == 99
    assert schedule_updates(tiny_config(train={"epochs": 2}), 10) == 20
    assert schedule_updates(tiny_config(train={"epochs": None, "max_minutes": 8}), 10) is None


def test_a_time_budget_ends_at_the_update_the_pace_so_far_reaches():
    assert updates_in_time(100, 60.0, 480.0) == 800  # 100 updates a minute, 8 minutes
    assert updates_in_time(100, 120.0, 480.0) == 400  # half the pace (fp32 on another CPU)
    assert updates_in_time(0, 0.0, 480.0) == NO_PACE_YET  # nothing timed yet: far off
    assert updates_in_time(800, 481.0, 480.0) == 801  # over time: never before the next update


def test_a_decaying_schedule_may_end_with_the_minutes_alone():
    config = tiny_config(schedule={"name": "warmup_cosine"}, train={"epochs": None, "max_minutes": 8})
    assert config.schedule.total_steps is None and config.train.max_minutes == 8
