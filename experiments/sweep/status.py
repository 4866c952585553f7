"""A sweep as it stands, read from MLflow alone, so that ``ablab run`` and ``ablab status`` in
any other shell see the same: each trial's state (queued, running, done, failed), and for a
running one its update step of the planned total, epoch, target tokens per second, last
validation BLEU, the time since it last logged (a hung trial stops logging; a slow one logs
slowly) and its time left; for the sweep the counts and its time left.

**Time left** is measured: a running trial's pace is its update steps per second over its last
:data:`RATE_WINDOW` logged points (the live delivery puts them in the store within about 30 s;
a trial silent for longer is counted as slower; a resumed trial's points since it resumed, so
that the pause is not counted),
its time left the updates to its planned total at that pace (a run limited by minutes alone:
the minutes left); a queued trial takes the plan's estimate for it
(``ablab.planned_seconds``, recorded when the sweep started) scaled by how the running trials
pace against their own estimates (the median ratio). The sweep's time left places those on as
many lanes as run at once. The plan's own estimate of what is left is shown beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ablab.experiments.planning.cost import makespan
from ablab.trainer.errors import UserError
from ablab.trainer.tracking import record
from ablab.trainer.tracking.mlflow_tracker import DEFAULT_LIVE

RATE_WINDOW = 10
"""Logged points a running trial's pace is measured over."""
DELIVERY_LAG = DEFAULT_LIVE
"""Seconds a logged point may take to reach the store: the trials' live delivery, by default."""
QUEUED, RUNNING, DONE, FAILED, KILLED = "queued", "running", "done", "failed", "killed"


@dataclass(frozen=True)
class TrialState:
    name: str
    state: str  # QUEUED, RUNNING, DONE (finished, diverged, early stopped), FAILED, KILLED
    step: int | None = None
    total: int | None = None  # planned updates (None: a run limited by minutes alone)
    epoch: float | None = None
    tokens_per_s: float | None = None  # target tokens per second, the mean of its newest points
    val_bleu: float | None = None
    quiet: float | None = None  # seconds since its newest logged point
    left: float | None = None  # seconds, at its measured pace
    planned: float | None = None  # seconds the plan estimated for the whole trial
    step_seconds: float | None = None  # its measured pace: seconds per update


@dataclass(frozen=True)
class SweepState:
    spec: str
    parent_run_id: str
    elapsed: float  # seconds since the sweep started or was last resumed, until now or its end
    lanes: int
    trials: list[TrialState] = field(default_factory=list)
    open: bool = True  # the sweep's parent run is still running (not settled, not interrupted)
    searched: bool = False  # its trials are made as a search samples them, not all at its start
    look: int | None = None  # a sequential design's newest look (from 1) among its trials
    resumed: bool = False  # ``elapsed`` counts from the last --resume

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    @property
    def ended(self) -> bool:
        """The parent run was closed, or (a driver that died cannot close it) every trial of a
        sweep that made them all at its start is done, failed or killed."""
        idle = not any(t.state in (QUEUED, RUNNING) for t in self.trials)
        return not self.open or (idle and bool(self.trials) and not self.searched)

    @property
    def pace(self) -> float:
        """The running trials' whole training at their measured pace over the plan's time for
        them (median; 1 without a measurement). From the pace, not the time since they started,
        which would count the hours between an interruption and its resume."""
        ratios = [
            t.total * t.step_seconds / t.planned
            for t in self.trials
            if t.state == RUNNING and t.step_seconds and t.total and t.planned
        ]
        return statistics.median(ratios) if ratios else 1.0

    @property
    def left(self) -> float | None:
        """Seconds until the sweep ends, at the measured pace: a running trial's own, a queued one's
        (or one just started, not measured yet) its plan's at the sweep's pace. None where a trial
        has neither."""
        pace = self.pace
        running = [t for t in self.trials if t.state == RUNNING]  # on their lanes first
        queued = [t for t in self.trials if t.state == QUEUED]
        items = [
            t.left if t.left is not None else (pace * t.planned if t.planned else None)
            for t in [*running, *queued]
        ]
        if any(x is None for x in items):
            return None
        return makespan(items, self.lanes)

    @property
    def planned_left(self) -> float | None:
        """The plan's estimate of the same: the running trials' unfinished share of theirs."""
        items = []
        for t in [
            *(t for t in self.trials if t.state == RUNNING),
            *(t for t in self.trials if t.state == QUEUED),
        ]:
            if t.planned is None:
                return None
            done = t.step / t.total if t.state == RUNNING and t.step and t.total else 0.0
            items.append(t.planned * (1 - min(done, 1.0)))
        return makespan(items, self.lanes)


def read(
    uri: str,
    experiment: str,
    lanes: int,
    parent_run_id: str | None = None,
    clock: Callable[[], float] = time.time,
) -> SweepState | None:
    """The newest sweep of ``experiment`` (or the one of ``parent_run_id``) as it stands at
    ``clock()``; None if the experiment holds no sweep."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    if parent_run_id is None:
        sweeps = record.search(client, found.experiment_id, record.SWEEP_KIND)
        if not sweeps:
            return None
        parent = max(sweeps, key=lambda r: r.info.start_time)
    else:
        parent = client.get_run(parent_run_id)
    now = clock()
    tags = parent.data.tags
    since = float(tags.get(record.REOPENED_AT, parent.info.start_time / 1000))
    closed = parent.info.status != "RUNNING" and parent.info.end_time is not None
    until = max(since, parent.info.end_time / 1000) if closed else now  # an ended sweep's time stays
    children = record.search(
        client, found.experiment_id, record.TRIAL_KIND, f"tags.`{record.PARENT}` = '{parent.info.run_id}'"
    )
    trials = sorted((_trial(client, run, now) for run in children), key=lambda t: t.name)
    running = sum(t.state == RUNNING for t in trials)
    return SweepState(
        tags.get(record.SPEC, experiment),
        parent.info.run_id,
        until - since,
        max(lanes, running),
        trials,
        open=parent.info.status == "RUNNING",
        searched=any(r.data.tags.get(record.SEARCH_ROLE) for r in children),
        look=max(
            (int(r.data.tags[record.LOOK]) for r in children if record.LOOK in r.data.tags), default=None
        ),
        resumed=record.REOPENED_AT in tags,
    )


def reader(target: str, uri: str) -> Callable[[], SweepState]:
    """``ablab status``: a function that reads the newest sweep of ``target`` (a spec, or an
    experiment name) as it stands; trials at once as many as a spec's trials' resources fit on
    this machine (an experiment name: as many as run now)."""
    from ablab.experiments.planning.cost import lanes
    from ablab.experiments.reporting import target_experiment
    from ablab.experiments.spec.expand import load_plan

    experiment = target_experiment(target).experiment
    at_once = lanes(load_plan(Path(target))) if Path(target).suffix in (".yaml", ".yml") else 1

    def read_now() -> SweepState:
        state = read(uri, experiment, at_once)
        if state is None:
            raise UserError(f"there is no sweep of {experiment} in {uri}; run it first (ablab run SPEC).")
        return state

    return read_now


def _trial(client, run, now: float) -> TrialState:
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    name = tags.get(record.TRIAL, run.info.run_name)
    planned = _number(tags.get(record.PLANNED_SECONDS))
    status = tags.get(record.STATUS)
    if status is None or run.info.status == "SCHEDULED":
        return TrialState(name, QUEUED, planned=planned)
    if status != record.RUNNING:
        state = DONE if status in record.DONE else KILLED if status == record.KILLED else FAILED
        return TrialState(name, state, planned=planned)
    points, speeds = (
        sorted(client.get_metric_history(run.info.run_id, record.TRAIN[key]), key=lambda m: m.step)
        for key in ("train_loss", "tgt_tokens_per_s")
    )
    total = _number(params.get("derived.planned_updates"))
    total = int(total) if total else None
    attempt = _number(tags.get(record.ATTEMPT_STARTED))
    trained_before = _number(tags.get(record.TRAINED_BEFORE))
    if attempt is not None and trained_before is not None:  # resumed: the pauses are not training
        training = trained_before + max(0.0, now - attempt)
    else:
        training = now - points[0].timestamp / 1000 if points else None  # since its first logged update
    recent = [m.value for m in speeds[-RATE_WINDOW:]]
    pace = _step_seconds([m for m in points if attempt is None or m.timestamp / 1000 >= attempt], now)
    return TrialState(
        name,
        RUNNING,
        step=points[-1].step if points else None,
        total=total,
        epoch=metrics.get(record.EPOCH),
        tokens_per_s=statistics.fmean(recent) if recent else None,
        val_bleu=metrics.get(record.VALIDATION["val_bleu"]),
        quiet=now - points[-1].timestamp / 1000 if points else None,
        left=_left(
            points[-1].step if points else 0, total, pace, _number(params.get("train.max_minutes")), training
        ),
        planned=planned,
        step_seconds=pace,
    )


def _step_seconds(points: list, now: float) -> float | None:
    """Seconds per update over the newest :data:`RATE_WINDOW` points. A trial silent for longer
    than a delivery takes is slower than its points say: the window then runs to ``now`` less
    :data:`DELIVERY_LAG`, so a stalled trial's time left grows instead of standing."""
    window = points[-RATE_WINDOW:]
    if len(window) < 2 or window[-1].step <= window[0].step:
        return None
    start, end = window[0].timestamp / 1000, window[-1].timestamp / 1000
    seconds = max(end, now - DELIVERY_LAG) - start
    return seconds / (window[-1].step - window[0].step) if seconds > 0 else None


def _left(
    step: int,
    total: int | None,
    step_seconds: float | None,
    max_minutes: float | None,
    training: float | None,
) -> float | None:
    """Seconds of training left: the updates to ``total`` at ``step_seconds`` each, or the minutes
    left of ``train.max_minutes`` (``training``: seconds since its first update), whichever ends
    first."""
    by_steps = max(0, total - step) * step_seconds if total is not None and step_seconds else None
    by_minutes = max(0.0, 60 * max_minutes - training) if max_minutes and training is not None else None
    known = [x for x in (by_steps, by_minutes) if x is not None]
    return min(known) if known else None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "None", "") else None
    except ValueError:
        return None
