"""Writes bound for a tracking store that may not answer: the queue of undelivered writes, telling
"the store did not answer" (retry later) from "the store refused" (a bug, raise), a client
that times its calls, and a courier that delivers on a timer."""

from __future__ import annotations

import re
import threading
import time
from typing import Any


class Outbox:
    """Writes to a run not yet delivered, in order: ``(kind, body)`` pairs of plain JSON data
    (metrics as ``(key, value, timestamp ms, step)``), and when to try the store next."""

    def __init__(self):
        self.items: list[tuple[str, Any]] = []
        self.unsure = False  # a delivery failed: the store may hold part of what was sent
        self.retry_at = 0.0
        self.delay = 1.0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, kind: str, body: Any) -> None:
        if body:
            self.items.append((kind, body))

    def add_metrics(self, metrics: list[tuple]) -> None:
        for i in range(0, len(metrics), 1000):  # MLflow accepts 1000 metrics per batch
            self.add("metrics", metrics[i : i + 1000])

    def metrics(self) -> list[tuple]:
        return [tuple(m) for kind, body in self.items if kind == "metrics" for m in body]

    def metric_keys(self) -> set[str]:
        return {m[0] for m in self.metrics()}

    def drop_logged(self, last_steps: dict[str, int]) -> None:
        """Drop queued metrics at or before the last step the run already holds for their key."""
        kept = []
        for kind, body in self.items:
            if kind == "metrics":
                body = [m for m in body if m[3] > last_steps.get(m[0], -1)]
            if body:
                kept.append((kind, body))
        self.items = kept


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store did not answer (connection refused or reset, a timeout, a
    5xx or 429 from a server, a locked sqlite file) rather than refused the request."""
    import requests
    from sqlalchemy.exc import OperationalError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError, OperationalError)):
            return True
        if re.search(r"error code (429|50[0234])\b", str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class TimedClient:
    """An ``MlflowClient`` that adds up the wall time of the calls made through it by the thread
    that made it (the training loop's): the courier's deliveries run beside training, not in it."""

    def __init__(self, client):
        self._client = client
        self.seconds = 0.0
        self._owner = threading.get_ident()

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                if threading.get_ident() == self._owner:
                    self.seconds += time.perf_counter() - started

        return timed


class Courier:
    """Calls ``deliver()`` every ``every`` seconds on a thread of its own, off the training loop's
    path, until :meth:`stop`. An error ``deliver`` raises (the store refused a write: a bug, not an
    outage, which ``deliver`` handles itself) stops the courier and is kept for :meth:`check`,
    which the training thread calls, so that it is raised where it can stop the run."""

    def __init__(self, deliver, every: float):
        self._deliver, self.every = deliver, every
        self.error: BaseException | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ablab-live-metrics", daemon=True)

    def start(self) -> Courier:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            try:
                self._deliver()
            except Exception as exc:  # noqa: BLE001 - kept and raised on the training thread
                self.error = exc
                return

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
