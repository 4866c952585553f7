"""What the trainer logs to: the :class:`Tracker` interface, and :class:`NullTracker`, which
records nothing (unit tests, dry runs).
:class:`~ablab.trainer.tracking.mlflow_tracker.MlflowTracker` is the real one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    run_id: str | None
    io_seconds: float  # wall time spent writing to the store so far
    started_at: float | None  # when the run began (Unix seconds), once started

    def start(
        self, params: dict[str, Any], tags: dict[str, str], run_id: str | None = None
    ) -> str | None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_json(self, data: Any, artifact_file: str) -> None: ...

    def log_file(self, path: Path, artifact_path: str | None = None) -> None: ...

    def flush(self) -> None: ...

    def unsent_metrics(self) -> list[tuple]: ...

    def resend_metrics(self, metrics: list[tuple]) -> None: ...

    def end(self, status: str, wait: bool = True) -> None: ...

    def save_pending(self, path: Path) -> None: ...

    def resend(self, path: Path) -> None: ...


class NullTracker:
    """Records nothing."""

    run_id: str | None = None
    io_seconds = 0.0
    started_at: float | None = None

    def start(self, params, tags, run_id=None):
        return None

    def log_metrics(self, metrics, step):
        pass

    def set_tags(self, tags):
        pass

    def log_text(self, text, artifact_file):
        pass

    def log_json(self, data, artifact_file):
        pass

    def log_file(self, path, artifact_path=None):
        pass

    def flush(self):
        pass

    def unsent_metrics(self):
        return []

    def resend_metrics(self, metrics):
        pass

    def end(self, status, wait=True):
        pass

    def save_pending(self, path):
        pass

    def resend(self, path):
        pass
