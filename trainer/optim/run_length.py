"""How long a run is, in optimizer updates: one rule for the schedule, the plan and the progress
bar (the training loop stops by the same rule, update by update, in ``trainer/loop.py``).

- An epoch of ``b`` batches is ``ceil(b / train.accum_steps)`` updates (a last, partial
  accumulation is an update too).
- The run stops at the first of ``train.epochs`` epochs and ``train.max_steps`` updates;
  ``train.max_minutes`` is a wall-clock limit, unknown in updates, so a run limited by it alone
  has no planned length (None).
- The learning-rate schedule decays to ``schedule.total_steps`` where set, else to that stop;
  a run limited by minutes alone decays to where its minutes end: the update
  :func:`updates_in_time` estimates from the pace so far, refined at every update, so one
  config fits a fast and a slow machine alike.
"""

from __future__ import annotations

import math

from ablab.trainer.config.schema import Config


def updates_per_epoch(config: Config, batches_per_epoch: int) -> int:
    return math.ceil(batches_per_epoch / config.train.accum_steps)


def planned_updates(config: Config, batches_per_epoch: int) -> int | None:
    """The update the run stops at: the first of its epoch and step limits (None: minutes only)."""
    limits = [config.train.max_steps]
    if config.train.epochs is not None:
        limits.append(config.train.epochs * updates_per_epoch(config, batches_per_epoch))
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def planned_epochs(config: Config, batches_per_epoch: int) -> float | None:
    """The run's planned length in epochs (fractional where a step limit ends it mid-epoch)."""
    updates = planned_updates(config, batches_per_epoch)
    return None if updates is None else updates / updates_per_epoch(config, batches_per_epoch)


def schedule_updates(config: Config, batches_per_epoch: int) -> int | None:
    """The last update of the learning-rate schedule: schedule.total_steps, else the run's stop
    (None: where ``train.max_minutes`` ends, :func:`updates_in_time`)."""
    if config.schedule.total_steps is not None:
        return config.schedule.total_steps
    return planned_updates(config, batches_per_epoch)


NO_PACE_YET = 2**31
"""The last update before any has been timed: as far off as can be (the schedule at its start)."""


def updates_in_time(step: int, elapsed_seconds: float, budget_seconds: float) -> int:
    """The update a time budget ends at, at the pace so far (validations included):
    ``step · budget / elapsed``, and never before the next update."""
    if step <= 0 or elapsed_seconds <= 0:
        return NO_PACE_YET
    return max(step + 1, round(step * budget_seconds / elapsed_seconds))
