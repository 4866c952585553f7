"""A sweep's progress, one line per event: trials done, running and failed, and the best
value of the spec's metric so far."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from ray import tune


class SweepProgress(tune.Callback):
    def __init__(self, total: int, metric: str, mode: str, echo: Callable[[str], None]):
        self.total, self.metric, self.mode, self.echo = total, metric, mode, echo
        self.running: dict[str, object] = {}  # trial id -> trial, while it runs
        self.done = self.failed = 0
        self.best = (-math.inf if mode == "max" else math.inf, None)
        self.started = time.monotonic()
        self.counted_earlier = False
        self.driver = os.getpid()

    def setup(self, **info):
        """Each Tune experiment of the sweep starts here (a searched sweep runs several, one after
        another: the counts go on). After a restore, which unpickles this callback from the
        interrupted driver, counting starts again: the trials that ended before are counted at
        the first event."""
        self.running, self.counted_earlier = {}, False
        if getattr(self, "driver", None) != os.getpid():  # (a callback pickled by older ablab has none)
            self.done = self.failed = 0
            self.started, self.driver = time.monotonic(), os.getpid()

    def _count_earlier(self, trials) -> None:
        if not self.counted_earlier:
            self.counted_earlier = True
            for trial in trials:
                if trial.status == "ERROR" or self._ended_failed(trial):
                    self.failed += 1
                elif trial.status == "TERMINATED":
                    self.done += 1

    @staticmethod
    def _ended_failed(trial) -> bool:
        """Ended itself on an input error (reported status ``failed``, without retries)."""
        return (trial.last_result or {}).get("status") == "failed"

    def _name(self, trial) -> str:
        return str(trial)  # the trial_name_creator's name: "heads=8,seed=1" (search: ",<trial id>")

    def _line(self, event: str) -> None:
        best, where = self.best
        best_text = f"best {self.metric} {best:.2f} ({where})" if where else f"best {self.metric} -"
        elapsed = time.monotonic() - self.started
        self.echo(
            f"[{elapsed / 60:5.1f} min] done {self.done}/{self.total}  running {len(self.running)}  "
            f"failed {self.failed}  {best_text}  | {event}"
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        self._count_earlier(trials)
        self.running[trial.trial_id] = trial
        self._line(f"started {self._name(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            better = value > self.best[0] if self.mode == "max" else value < self.best[0]
            if better:
                self.best = (value, self._name(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._line(f"retrying {self._name(trial)} from its last checkpoint")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        if self._ended_failed(trial):
            self.failed += 1
        else:
            self.done += 1
        status = (trial.last_result or {}).get("status", "stopped")
        self._line(f"{'FAILED' if status == 'failed' else status} {self._name(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self.failed += 1
        self._line(f"FAILED {self._name(trial)} (retries exhausted)")
