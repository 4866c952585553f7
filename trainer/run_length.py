"""How long a run is, in optimizer updates: one rule for the schedule, the plan and the progress
bar (the training loop stops by the same rule, update by update, in ``trainer/loop.py``).

- An epoch of ``b`` batches is ``ceil(b / train.accum_steps)`` updates (a last, partial
  accumulation is an update too).
- The run stops at the first of ``train.epochs`` epochs and ``train.max_steps`` updates;
  ``train.max_minutes`` is a wall-clock limit, unknown in updates, so a run limited by it alone
  has no planned length (None).
- The learning-rate schedule decays to ``schedule.total_steps`` where set, else to that stop.
"""

from __future__ import annotations

import math

from trainer.config import Config


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
    """The last update of the learning-rate schedule: schedule.total_steps, else the run's stop."""
    if config.schedule.total_steps is not None:
        return config.schedule.total_steps
    return planned_updates(config, batches_per_epoch)
