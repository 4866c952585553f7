"""A sweep's progress, one line per event: trials done, running and failed, and the best
value of the spec's metric so far; between events, each running trial's progress and the time
left, read from the store; and a line for each trial far slower than planned."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable

from ray import tune

from ablab.trainer.tracking import record


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
        if self.driver != os.getpid():
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


_live_view = None  # the live view of the sweep running in this process, while there is one


def say(echo: Callable[[str], None], line: str) -> None:
    """A line of the sweep's: printed above the live view while there is one, else ``echo``ed."""
    view = _live_view  # read once: the view may be closed meanwhile
    if view is not None:
        view.console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        echo(line)


class SweepWatch:
    """What the sweep looks like from the store, on a thread of its own every ``every`` seconds
    (and once more as the sweep ends): each running trial's progress and the time left
    (:mod:`ablab.experiments.sweep.status`), live on a terminal (``live``: a table redrawn in
    place), as plain lines every ``plain_every`` seconds otherwise (a log file, CI: no control
    codes); and, once per trial, the line a trial put on its run when it trained far slower than
    planned (:mod:`ablab.experiments.sweep.pace`). ``every`` None shows no status (``--quiet``),
    the slow-trial lines still. A store that does not answer never holds up the sweep: a look
    that fails is skipped, and the end waits for the last look 5 s at most."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        parent_run_id: str,
        lanes: int,
        echo: Callable[[str], None],
        every: float | None = 30.0,
        live: bool = False,
    ):
        self.uri, self.experiment, self.parent, self.lanes, self.echo = (
            uri,
            experiment,
            parent_run_id,
            lanes,
            echo,
        )
        self.every, self.live = every, live
        self.plain_every = 4 * every if every else None
        self.told: set[str] = set()
        self._last_plain = -math.inf
        self._view = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ablab-sweep-watch", daemon=True)

    @property
    def say(self) -> Callable[[str], None]:
        """``echo`` as the sweep's lines go: above the live view while there is one. A plain
        function of this module and ``echo``, so that Tune can pickle the callbacks it is given."""
        return functools.partial(say, self.echo)

    def __enter__(self) -> SweepWatch:
        if self.live and self.every:
            from rich.console import Console
            from rich.live import Live

            global _live_view
            self._view = _live_view = Live(
                console=Console(stderr=True), auto_refresh=False, redirect_stderr=True
            )
            self._view.start()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._view is not None:
            global _live_view
            self._view.stop()
            _live_view = None

    def _watch(self) -> None:
        stopped, broken = False, False
        while not stopped:
            stopped = self._stop.wait(self.every or 15.0)
            try:
                self.poll(last=stopped)
            except Exception as exc:  # noqa: BLE001 - a view that fails must not end the watch
                if not broken:
                    broken = True
                    say(
                        self.echo, f"ablab: warning: the sweep's status could not be read ({exc!r}); retrying"
                    )

    def poll(self, last: bool = False) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from ablab.experiments.sweep import status, status_view

        try:
            client = MlflowClient(self.uri)
            experiment = client.get_experiment_by_name(self.experiment)
            query = f"tags.`{record.PARENT}` = '{self.parent}' and tags.`{record.SLOW}` LIKE '%'"
            found = client.search_runs([experiment.experiment_id], query) if experiment else []
            wanted = self.every and not last  # the last look only tells the slow trials
            state = status.read(self.uri, self.experiment, self.lanes, self.parent) if wanted else None
        except (MlflowException, OSError):
            return  # the store does not answer now: the next look tries again
        for run in found:
            if run.info.run_id not in self.told:
                self.told.add(run.info.run_id)
                say(self.echo, f"ablab: warning: {run.data.tags[record.SLOW]}")
        if state is None or self._stop.is_set():
            return
        if self._view is not None:
            self._view.update(status_view.table(state), refresh=True)
        elif time.monotonic() - self._last_plain >= self.plain_every:
            self._last_plain = time.monotonic()
            for line in status_view.plain_lines(state):
                self.echo(line)
