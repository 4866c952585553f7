"""Learning-rate schedules as pure functions of the update step.

Conventions shared by every schedule:

* ``step`` counts optimizer updates from 1: the learning rate for the first update is
  ``lr(1)``. ``lr(0)`` is defined (the value before any update) but never used to train.
* ``warmup`` is the number of linear warmup updates: ``lr(s) = lr_max * s / warmup`` for
  ``s <= warmup``, so the peak ``lr_max`` is reached exactly at ``s = warmup``.
  ``warmup = 0`` means no warmup: ``lr_max`` (or the schedule's own peak) from the first update.
* ``total`` is the last update; decaying schedules reach ``lr_min`` there and stay there.

The registry :data:`SCHEDULES` maps the short names that configs, specs and MLflow use to the
functions and the arguments each takes; :func:`make_schedule` binds them from the values at hand,
:func:`build_schedule` from the config's ``schedule`` section.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablab.trainer.errors import ConfigError

if TYPE_CHECKING:  # the config's schema imports the registry below
    from ablab.trainer.config.schema import ScheduleConfig


def _warmup_factor(step: int, warmup: int) -> float:
    """Linear warmup factor ``min(1, step / warmup)``; 1 when ``warmup == 0``."""
    if warmup <= 0:
        return 1.0
    return min(1.0, step / warmup)


def _decay_progress(step: int, warmup: int, total: int) -> float:
    """Fraction of the decay phase done: 0 at ``warmup``, 1 at ``total`` and after."""
    span = max(1, total - warmup)
    return min(1.0, max(0.0, (step - warmup) / span))


def noam(step: int, *, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """Vaswani et al. (2017), eq. 3: ``scale * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)``.

    Rises linearly to its peak ``scale * (d_model * warmup)**-0.5`` at ``s = warmup``, then
    decays as ``1/sqrt(s)``, so ``lr(4 * warmup) = lr(warmup) / 2``. ``warmup = 0`` gives the
    pure inverse square root ``scale * d_model**-0.5 * s**-0.5`` from the first update.
    The peak is set by ``d_model``, ``warmup`` and ``scale``, not by a learning rate.
    """
    if step <= 0:
        return 0.0
    if warmup <= 0:
        return scale * d_model**-0.5 * step**-0.5
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def inverse_sqrt(step: int, *, lr_max: float, warmup: int) -> float:
    """fairseq's ``inverse_sqrt``: linear warmup to ``lr_max``, then ``lr_max * sqrt(warmup / s)``.

    With ``warmup = 0`` the decay is anchored at the first update: ``lr_max / sqrt(s)``.
    """
    if step <= warmup:
        return lr_max * _warmup_factor(step, warmup)
    return lr_max * math.sqrt(max(warmup, 1) / step)


def constant(step: int, *, lr_max: float, warmup: int) -> float:
    """Constant ``lr_max`` after an optional linear warmup: ``lr_max * min(1, s / warmup)``."""
    return lr_max * _warmup_factor(step, warmup)


def warmup_cosine(step: int, *, lr_max: float, warmup: int, total: int, lr_min: float = 0.0) -> float:
    """Linear warmup, then half a cosine from ``lr_max`` down to ``lr_min`` at ``total``.

    ``lr(s) = lr_min + (lr_max - lr_min) * (1 + cos(pi * p)) / 2`` with
    ``p = (s - warmup) / (total - warmup)``; at the decay's midpoint ``lr = (lr_max + lr_min) / 2``.
    """
    if step <= warmup:
        return lr_max * _warmup_factor(step, warmup)
    p = _decay_progress(step, warmup, total)
    return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + math.cos(math.pi * p))


def polynomial(
    step: int, *, lr_max: float, warmup: int, total: int, lr_min: float = 0.0, power: float = 1.0
) -> float:
    """Linear warmup, then ``lr_min + (lr_max - lr_min) * (1 - p)**power`` (p as in cosine)."""
    if step <= warmup:
        return lr_max * _warmup_factor(step, warmup)
    p = _decay_progress(step, warmup, total)
    return lr_min + (lr_max - lr_min) * (1.0 - p) ** power


def warmup_linear(step: int, *, lr_max: float, warmup: int, total: int, lr_min: float = 0.0) -> float:
    """Linear warmup, then linear decay to ``lr_min`` at ``total``: :func:`polynomial`, power 1."""
    return polynomial(step, lr_max=lr_max, warmup=warmup, total=total, lr_min=lr_min, power=1.0)


def constant_cooldown(
    step: int,
    *,
    lr_max: float,
    warmup: int,
    total: int,
    lr_min: float = 0.0,
    cooldown_fraction: float = 0.2,
) -> float:
    """Warmup–stable–decay: warmup, constant ``lr_max``, then a linear cooldown to ``lr_min``.

    The cooldown covers the last ``cooldown_fraction`` of the ``total`` updates, i.e. it
    starts at ``c = total - round(cooldown_fraction * total)`` (never before ``warmup``):
    ``lr(s) = lr_max - (lr_max - lr_min) * (s - c) / (total - c)`` for ``c < s <= total``.
    """
    if step <= warmup:
        return lr_max * _warmup_factor(step, warmup)
    cooldown_start = max(warmup, total - round(cooldown_fraction * total))
    if step <= cooldown_start:
        return lr_max
    p = _decay_progress(step, cooldown_start, total)
    return lr_max - (lr_max - lr_min) * p


@dataclass(frozen=True)
class Schedule:
    """A schedule function and the keyword arguments it takes: ``required`` must be set,
    ``optional`` fall back to the function's defaults when missing."""

    fn: Callable[..., float]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


DECAYING = ("lr_max", "warmup", "total")
SCHEDULES: dict[str, Schedule] = {
    "noam": Schedule(noam, ("d_model", "warmup"), ("scale",)),
    "warmup_cosine": Schedule(warmup_cosine, DECAYING, ("lr_min",)),
    "warmup_linear": Schedule(warmup_linear, DECAYING, ("lr_min",)),
    "constant": Schedule(constant, ("lr_max", "warmup")),
    "inverse_sqrt": Schedule(inverse_sqrt, ("lr_max", "warmup")),
    "polynomial": Schedule(polynomial, DECAYING, ("lr_min", "power")),
    "constant_cooldown": Schedule(constant_cooldown, DECAYING, ("lr_min", "cooldown_fraction")),
}

NEEDS_TOTAL = frozenset(name for name, schedule in SCHEDULES.items() if "total" in schedule.required)
"""Schedules that decay towards a last update and so need to know ``total``."""


def _registered(name: str) -> Schedule:
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ConfigError(
            f"schedule.name: unknown schedule {name!r}; valid names are {', '.join(SCHEDULES)}."
        ) from None


def make_schedule(
    name: str, *, total_later: bool = False, **values: float | int | None
) -> Callable[..., float]:
    """Bind the schedule ``name`` to the arguments :data:`SCHEDULES` says it takes, from ``values``.

    ``values`` may hold more than the schedule uses (``d_model`` is only read by ``noam``);
    a required argument that is missing or None raises :class:`ConfigError`, except ``total``
    with ``total_later``: then the caller gives it at each call, ``lr(step, total)`` (a run that
    ends where its time budget ends knows its last update only as it goes).
    """
    schedule = _registered(name)
    for argument in schedule.required:
        if values.get(argument) is None and not (argument == "total" and total_later):
            fix = (
                "set schedule.total_steps, train.max_steps, train.epochs or train.max_minutes."
                if argument == "total"
                else f"set schedule.{argument}."
            )
            raise ConfigError(f"schedule {name!r} needs {argument!r} but it is not set; {fix}")
    kwargs = {a: values[a] for a in (*schedule.required, *schedule.optional) if values.get(a) is not None}
    takes_total = "total" in schedule.required

    def lr(step: int, total: int | None = None) -> float:
        return schedule.fn(
            step, **(kwargs | {"total": total} if takes_total and total is not None else kwargs)
        )

    lr.__name__ = name
    return lr


def build_schedule(
    cfg: ScheduleConfig, *, peak_lr: float, d_model: int, total: int | None
) -> Callable[..., float]:
    """The schedule the ``schedule`` section describes, peaking at ``peak_lr`` (``optim.lr``) and
    ending at update ``total``; ``total=None`` where a decaying schedule ends with the time budget:
    it is given at each call then (``lr(step, total)``)."""
    return make_schedule(
        cfg.name,
        total_later=total is None,
        lr_max=peak_lr,
        warmup=cfg.warmup_steps,
        total=total,
        lr_min=cfg.lr_min,
        d_model=d_model,
        scale=cfg.scale,
        power=cfg.power,
        cooldown_fraction=cfg.cooldown_fraction,
    )
