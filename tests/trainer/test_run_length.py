"""The run's length in updates: one rule for the trainer, the plan and the progress bar."""

import pytest

from tests.conftest import tiny_config
from trainer.run_length import planned_epochs, planned_updates, schedule_updates, updates_per_epoch


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
