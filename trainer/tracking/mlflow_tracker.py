"""Experiment tracking: one training run = one MLflow run.

The trainer talks to a :class:`~ablab.trainer.tracking.tracker.Tracker`; :class:`MlflowTracker` is the
real one,
delivering through an :class:`~ablab.trainer.tracking.outbox.Outbox` so that a store that does not answer
never holds up training. Step metrics are buffered and
written in batches (``log_batch``), which keeps per-step logging off the training hot path, and
delivered on a timer as well as at each checkpoint, so a run's curves are in the store within
``ABLAB_LIVE_SECONDS`` (default 30) of being logged, even where an epoch takes hours.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ablab.trainer.errors import Unavailable
from ablab.trainer.tracking import record
from ablab.trainer.tracking.outbox import Courier, Outbox, TimedClient, first_line, unreachable
from ablab.trainer.tracking.store import absolute_uri, ensure_experiment

PATIENCE_ENV = "ABLAB_TRACKING_PATIENCE"
DEFAULT_PATIENCE = 600.0
"""Seconds a run waits at its end for a tracking store that does not answer."""
MAX_BACKOFF = 30.0
"""Longest pause, in seconds, between two tries of a store that does not answer."""
LIVE_ENV = "ABLAB_LIVE_SECONDS"
DEFAULT_LIVE = 30.0
"""Seconds between two deliveries of the metrics logged since (0: only at checkpoints)."""


class MlflowTracker:
    """Logs to an MLflow run through ``MlflowClient`` (no global fluent-API state).

    Nothing touches the store before :meth:`start`: a run that fails on bad input first
    leaves no database, experiment or run behind. The run is created at start, or reopened:
    the one a resumed checkpoint names, else ``run_id`` (a run a sweep driver created).
    The tracker remembers the last step logged per metric (a reopened run: the last in the
    store) and drops what is logged again at or before it: a run resumed from an older
    checkpoint than the newest (a stale Tune state) replays those steps deterministically, so
    nothing is lost or doubled.

    Writes queue in order and are delivered without holding up training: metrics at
    :meth:`flush` (the training loop calls it after each checkpoint) and every ``live_every``
    seconds by a :class:`~ablab.trainer.tracking.outbox.Courier` thread, the rest at once. One lock
    keeps deliveries in order; the queue has a lock of its own, held for moments and never over a
    request, and logging a step appends under a third: the training loop never waits on the store,
    to log, to queue, or to take its checkpoint's snapshot of what is undelivered. Steps a killed
    run delivered after its last checkpoint are in the store when it resumes, which reads the
    last step of each metric there and drops the replayed ones (on a deterministic device the
    replay computes the same values). While
    the store does not answer (a tracking server restarting, a locked sqlite file) training goes
    on and delivery is retried at the next write or flush after a backoff of 1 s doubling up
    to 30 s. A failed request may have reached the store before the answer was lost, so before
    the queue is retried the metric steps already in the run are asked for and dropped from it:
    nothing is lost or doubled. At :meth:`end` the tracker waits up to ``patience`` seconds
    (``ABLAB_TRACKING_PATIENCE``, default 600) for the store, then raises
    :class:`~ablab.trainer.errors.Unavailable`; :meth:`save_pending` keeps what was not delivered
    and :meth:`resend` delivers it later.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        patience: float | None = None,
        live_every: float | None = None,
    ):
        self.tracking_uri = absolute_uri(tracking_uri)
        self.client = None
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.run_id: str | None = run_id
        self.started_at: float | None = None  # the run's MLflow start time, once started
        self.patience = (
            float(os.environ.get(PATIENCE_ENV, DEFAULT_PATIENCE)) if patience is None else patience
        )
        self.live_every = float(os.environ.get(LIVE_ENV, DEFAULT_LIVE)) if live_every is None else live_every
        self._metrics: list = []  # logged since the last delivery
        self._logged_up_to: dict[str, int] = {}  # metric -> last step already in the run
        self._logged_lock = threading.Lock()  # the two above: the training loop's and the courier's
        self._outbox = Outbox()
        self._delivery = threading.RLock()  # one delivery at a time: the writes stay in order
        self._queue_lock = threading.Lock()  # the outbox's queue, held for moments, never over a request
        self._courier: Courier | None = None

    def _connect(self) -> None:
        from mlflow import MlflowClient

        # this tracker retries itself without blocking training; MLflow's own retries of an
        # HTTP request (7, backoff up to 2 minutes) would hold up the training loop instead
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        if self.client is None:
            self.client = TimedClient(MlflowClient(self.tracking_uri))

    def start(self, params: dict[str, Any], tags: dict[str, str], run_id: str | None = None) -> str:
        """Create or reopen the run; log params (once per run) and tags. A store that does not
        answer is waited for, up to ``patience``."""
        self._connect()
        all_tags = {**tags, **self.tags, record.STATUS: record.RUNNING}  # a reopened run is again running
        if self.parent_run_id:
            all_tags[record.PARENT] = self.parent_run_id
        run_id = run_id or self.run_id
        if run_id is None:  # a new run: a store that does not answer now is more likely a wrong URI
            experiment_id = self.patiently(
                lambda: ensure_experiment(self.tracking_uri, self.experiment), patience=0
            )
            run = self.patiently(
                lambda: self.client.create_run(experiment_id, tags=all_tags, run_name=self.run_name),
                patience=0,
            )
            self.run_id, self.started_at = run.info.run_id, run.info.start_time / 1000
            self._log_params(params)
            self._start_courier()
            return self.run_id
        self.run_id = run_id
        self.patiently(lambda: self.client.update_run(run_id, status="RUNNING"))
        reopened = self.patiently(lambda: self.client.get_run(run_id))
        self.started_at = reopened.info.start_time / 1000
        if not reopened.data.params:
            self._log_params(params)
        self._logged_up_to = self.patiently(lambda: self._last_steps(None))
        self.set_tags(all_tags)
        self._start_courier()
        return run_id

    def _start_courier(self) -> None:
        if self.live_every > 0 and self._courier is None:
            self._courier = Courier(self.flush_logged, self.live_every).start()

    def patiently(self, call, patience: float | None = None):
        """``call()``, retried with backoff while the store does not answer, for up to
        ``patience`` seconds (default: the tracker's)."""
        patience = self.patience if patience is None else patience
        waited, delay = 0.0, 1.0
        while True:
            try:
                return call()
            except Exception as exc:
                if not unreachable(exc):
                    raise
                if waited >= patience:
                    raise self._unavailable(exc, waited) from None
                pause = min(delay, patience - waited)
                _warn(f"{self.tracking_uri} does not answer ({first_line(exc)}); retrying in {pause:.0f} s")
                time.sleep(pause)
                waited, delay = waited + pause, min(2 * delay, MAX_BACKOFF)

    def _unavailable(self, exc: Exception, waited: float) -> Unavailable:
        if self.run_id is None:
            return Unavailable(
                f"the MLflow tracking store {self.tracking_uri} does not answer ({first_line(exc)}); "
                "nothing was written. Check the tracking URI (--tracking-uri, MLFLOW_TRACKING_URI) "
                "and that the server runs."
            )
        return Unavailable(
            f"the MLflow tracking store {self.tracking_uri} did not answer for {waited:.0f} s "
            f"({first_line(exc)}); {len(self._outbox)} writes to run {self.run_id} were not delivered. "
            f"Raise {PATIENCE_ENV} (seconds) to wait longer."
        )

    def _last_steps(self, keys) -> dict[str, int]:
        """The last step in the run of each metric in ``keys`` (None: every metric of the run)."""
        if keys is None:
            keys = self.client.get_run(self.run_id).data.metrics
        last = {}
        for key in keys:
            steps = [m.step for m in self.client.get_metric_history(self.run_id, key)]
            if steps:
                last[key] = max(steps)
        return last

    @property
    def io_seconds(self) -> float:
        """Wall time the training thread spent in calls to the tracking store so far (the
        courier's deliveries, beside it, are not counted)."""
        return self.client.seconds if self.client is not None else 0.0

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, record.param_text(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts 100 params per batch
            self.patiently(lambda i=i: self.client.log_batch(self.run_id, params=items[i : i + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics at ``step``; a metric already logged at this step or a later one (the
        epoch beside both an update's and a validation's metrics, a replayed step) is dropped."""
        now = int(time.time() * 1000)
        with self._logged_lock:
            for key, value in metrics.items():
                if value is not None and step > self._logged_up_to.get(key, -1):
                    self._metrics.append((key, float(value), now, step))
                    self._logged_up_to[key] = step

    def flush(self) -> None:
        """Queue the metrics logged since the last delivery and deliver the queue if the store
        answers (or is not due for a retry yet), unless the courier is delivering right now (it
        takes these too): never waits on the store. Raises what stopped the courier, if anything."""
        if self._courier is not None:
            self._courier.check()
        self._take_logged()
        self._try_deliver()

    def flush_logged(self) -> None:
        """The courier's delivery: the metrics logged since, then the whole queue."""
        with self._delivery:
            self._take_logged()
            self._deliver(wait=False)

    def _take_logged(self) -> None:
        with self._queue_lock, self._logged_lock:
            self._outbox.add_metrics(self._metrics)
            self._metrics = []

    def _try_deliver(self) -> None:
        """Deliver now, on the training thread, unless the courier is delivering (one delivery at
        a time keeps the writes in order; the courier's takes what was queued meanwhile)."""
        if self._delivery.acquire(blocking=self._courier is None):
            try:
                self._deliver(wait=False)
            finally:
                self._delivery.release()

    def unsent_metrics(self) -> list[tuple]:
        """The metrics logged and not yet delivered, ``(key, value, timestamp ms, step)`` each. A
        checkpoint keeps them, so that a worker killed before they reach the store loses none of
        the steps its checkpoint covers (the resumed trial does not log those steps again). A
        batch in flight is among them (it leaves the queue once stored): a resume that sends it
        again finds it stored and drops it."""
        with self._queue_lock, self._logged_lock:
            return self._outbox.metrics() + self._metrics

    def resend_metrics(self, metrics: list[tuple]) -> None:
        """Queue again metrics :meth:`unsent_metrics` returned before an interruption; those the
        run already holds (delivered after all) are dropped before sending."""
        if metrics:
            with self._queue_lock:
                self._outbox.add_metrics([tuple(m) for m in metrics])
                self._outbox.unsure = True
            self._try_deliver()

    def set_tags(self, tags: dict[str, str]) -> None:
        self._queue("tags", {k: str(v) for k, v in tags.items()})

    def log_text(self, text: str, artifact_file: str) -> None:
        self._queue("text", [text, artifact_file])

    def _queue(self, kind: str, body: Any) -> None:
        with self._queue_lock:
            self._outbox.add(kind, body)
        self._try_deliver()

    def log_json(self, data: Any, artifact_file: str) -> None:
        """``data`` as valid JSON: a NaN or infinite number (an empty reliability bin's mean)
        is written ``null``, which JSON has, not ``NaN``, which it has not."""
        self.log_text(json.dumps(json_safe(data), indent=1, allow_nan=False), artifact_file)

    def log_file(self, path: Path, artifact_path: str | None = None) -> None:
        self._queue("file", [str(path), artifact_path])

    def end(self, status: str, wait: bool = True) -> None:
        """Close the run as ``status``. With ``wait``, wait up to ``patience`` for the store and
        raise :class:`~ablab.trainer.errors.Unavailable` if it never answers; without, try once
        (a run ending on an error or a stop must not hang on the store)."""
        if self._courier is not None:
            self._courier.stop()
        with self._delivery:
            self._take_logged()
            with self._queue_lock:
                self._outbox.add("tags", {record.STATUS: status})
                self._outbox.add("end", record.MLFLOW_STATUS[status])
            self._deliver(wait=wait)

    def save_pending(self, path: Path) -> None:
        """Write the undelivered writes to ``path`` (JSON) for :meth:`resend`."""
        from ablab.trainer.checkpoint import atomic_write

        with self._queue_lock:
            items = list(self._outbox.items)
        atomic_write(path, json.dumps({"run_id": self.run_id, "writes": items}).encode())

    def resend(self, path: Path) -> None:
        """Deliver the writes :meth:`save_pending` kept in ``path``, then delete it."""
        saved = json.loads(path.read_text())
        self._connect()
        self.run_id = saved["run_id"]
        with self._delivery:
            with self._queue_lock:
                self._outbox.items.extend(tuple(item) for item in saved["writes"])
                self._outbox.unsure = True
            self._deliver(wait=True)
        path.unlink()

    def _deliver(self, wait: bool) -> None:
        """Send the queued writes (the caller holds the delivery lock): with ``wait``, retried
        until sent or ``patience`` is over; without, tried once if a retry is due, a failure
        scheduling the next try."""
        box = self._outbox
        with self._queue_lock:
            if not box.items:
                return
        if wait:
            self.patiently(self._send_queued)
            return
        if time.monotonic() < box.retry_at:
            return
        try:
            self._send_queued()
        except Exception as exc:
            if not unreachable(exc):
                raise
            box.retry_at = time.monotonic() + box.delay
            _warn(
                f"{self.tracking_uri} does not answer ({first_line(exc)}); training goes on, "
                f"{len(box)} writes queued, next try in {box.delay:.0f} s"
            )
            box.delay = min(2 * box.delay, MAX_BACKOFF)

    def _send_queued(self) -> None:
        """Send the queue's writes in order, each leaving it once stored; the queue's lock is held
        only to look and to take off, never across a request, so the training thread can queue
        and take its checkpoint's snapshot while a request is in flight."""
        box = self._outbox
        try:
            if box.unsure:  # the last failed request may have been stored: drop what was
                with self._queue_lock:
                    keys = box.metric_keys()
                stored = self._last_steps(keys)
                with self._queue_lock:
                    box.drop_logged(stored)
                box.unsure = False
            while True:
                with self._queue_lock:
                    if not box.items:
                        break
                    head = box.items[0]
                self._send(*head)
                with self._queue_lock:
                    box.items.pop(0)
            box.delay = 1.0
        except Exception:
            box.unsure = True
            raise

    def _send(self, kind: str, body: Any) -> None:
        from mlflow.entities import Metric, RunTag

        if kind == "metrics":
            self.client.log_batch(self.run_id, metrics=[Metric(*m) for m in body])
        elif kind == "tags":
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in body.items()])
        elif kind == "text":
            self.client.log_text(self.run_id, *body)
        elif kind == "file":
            self.client.log_artifact(self.run_id, *body)
        elif kind == "end":
            self.client.set_terminated(self.run_id, status=body)


def _warn(message: str) -> None:
    print(f"ablab: tracking: {message}", file=sys.stderr, flush=True)


def json_safe(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data
