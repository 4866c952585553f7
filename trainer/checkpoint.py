"""Checkpoint files: written atomically, verified by checksum, loaded without pickle code.

A checkpoint is a plain ``torch.save`` file ``NAME.pt`` plus ``NAME.pt.sha256`` holding the
SHA-256 of its bytes. Both are written to a temporary file and renamed into place, the
checksum last, so a crash mid-write leaves either the previous checkpoint or an incomplete
one that :func:`latest` skips; a file altered on disk fails its checksum and is skipped too.
Loading uses ``torch.load(weights_only=True)``: tensors and plain containers only.

Resumable training checkpoints are ``step-00001234.pt``; the newest ``keep`` of them are kept.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

STEP_PATTERN = re.compile(r"^step-(\d+)\.pt$")


class CorruptCheckpoint(Exception):
    """A checkpoint whose bytes do not match its checksum, or that has none."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` and its checksum beside it, each atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write(path, data)
    atomic_write(_checksum_path(path), hashlib.sha256(data).hexdigest().encode() + b"\n")


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`, verifying its checksum first."""
    data = path.read_bytes()
    try:
        expected = _checksum_path(path).read_text().strip()
    except FileNotFoundError:
        raise CorruptCheckpoint(f"{path}: no checksum file (the write did not complete)") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise CorruptCheckpoint(f"{path}: SHA-256 {actual[:12]}... does not match {expected[:12]}...")
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def step_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.pt"


def step_checkpoints(folder: Path) -> list[Path]:
    """Resumable checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def latest(
    folder: Path, map_location: str | torch.device = "cpu"
) -> tuple[Path | None, dict | None, list[str]]:
    """The newest checkpoint in ``folder`` that verifies, and why newer ones were skipped."""
    skipped = []
    for path in step_checkpoints(folder):
        try:
            return path, load(path, map_location), skipped
        except (CorruptCheckpoint, RuntimeError, EOFError, OSError) as exc:
            skipped.append(str(exc))
    return None, None, skipped


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` resumable checkpoints."""
    for path in step_checkpoints(folder)[keep:]:
        path.unlink(missing_ok=True)
        _checksum_path(path).unlink(missing_ok=True)
