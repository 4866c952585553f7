"""Refuse to start where results could not be written: a folder that cannot be created or
written to (a file in the way, a read-only file system, no permission) or a disk nearly full,
found before training starts rather than at the first checkpoint an hour in."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ablab.trainer.errors import UserError

MIN_FREE_BYTES = 512 * 2**20
"""Room a run needs at least: a few checkpoints (weights and optimizer state) and its logs."""


def check_writable(path: Path, what: str, min_free: int = MIN_FREE_BYTES) -> None:
    """``path`` (a folder, made later if missing) can hold ``what``: its nearest existing
    ancestor is a folder that accepts a new file, on a disk with ``min_free`` bytes free.
    Nothing is left behind: missing folders are not made here."""
    path = Path(path).resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"{path}: cannot hold {what}: {existing} is a file, not a folder; move it away or choose "
            "another location."
        )
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".ablab-write-check-"):
            pass
    except OSError as exc:
        raise UserError(
            f"{path}: cannot write {what} there ({exc.strerror}); choose a writable location."
        ) from None
    free, need = shutil.disk_usage(existing).free / 2**20, min_free / 2**20
    if free < need:
        raise UserError(
            f"{path}: only {free:,.0f} MiB free on its disk, less than the {need:,.0f} MiB {what} need; "
            "free some space or choose another disk."
        )


def check_store_writable(tracking_uri: str) -> None:
    """A local sqlite MLflow store's folder can be written (a server checks its own disk)."""
    if tracking_uri.startswith("sqlite:///"):
        check_writable(Path(tracking_uri.removeprefix("sqlite:///")).parent, "the MLflow store")
