"""Sentence-per-line text files, plain or gzip, read and checked in whole-file operations.

A file is read as bytes (gunzipped when it starts with gzip's magic bytes, whatever its
name), decoded as UTF-8 in one call (a leading byte-order mark dropped) and split at ``\\n``; a
``\\r`` before a ``\\n`` is dropped (files written on Windows). Empty lines are kept: in a parallel
corpus they are sentences like any other, and keep the two sides aligned. Checks: the file is
not empty, it is valid UTF-8, and no line is longer than :data:`MAX_LINE_CHARS` (a longer one
means the file is not sentence-per-line).
Every error names the file and, where there is one, the line. The two sides of a parallel split
must have equal line counts. No Python work runs per line except in the C-level string calls.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

from ablab.trainer.errors import DataError

MAX_LINE_CHARS = 2000
"""Longest line accepted; Multi30k's longest is 346 characters, a long WMT sentence ~1,000."""

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it is gzip; errors name the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror}).") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: cannot read it as gzip ({exc}).") from None
    if path.suffix == ".gz":
        raise DataError(f"{path}: cannot read it as gzip (it is named .gz but is not gzip data).")
    return raw


def _line_of(raw: bytes, offset: int) -> int:
    """The 1-based line number holding byte ``offset``."""
    return raw.count(b"\n", 0, offset) + 1


def split_lines(raw: bytes, path: Path) -> list[str]:
    """Decoded, checked lines of ``raw`` (the content of ``path``), without line ends."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = exc.start - raw.rfind(b"\n", 0, exc.start) - 1
        raise DataError(
            f"{path}, line {_line_of(raw, exc.start)}: invalid UTF-8 ({exc.reason} at byte "
            f"{column} of the line)."
        ) from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: the file is empty; expected one sentence per line.")
    longest = max(map(len, lines))
    if longest > MAX_LINE_CHARS:
        number = next(i for i, line in enumerate(lines, start=1) if len(line) > MAX_LINE_CHARS)
        raise DataError(
            f"{path}, line {number}: {len(lines[number - 1])} characters, more than the "
            f"{MAX_LINE_CHARS} a sentence can have; the file is not sentence-per-line."
        )
    return lines


def read_lines(path: Path) -> list[str]:
    """The checked lines of a plain or gzipped UTF-8 file, without line ends."""
    return split_lines(read_bytes(path), path)


@dataclass(frozen=True)
class Parallel:
    """One split: source and target sentences, aligned line by line."""

    name: str
    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


def aligned(name: str, src_path: Path, src: list[str], tgt_path: Path, tgt: list[str]) -> Parallel:
    """The split ``name`` from both sides' lines, checked to be aligned (equal line counts)."""
    if len(src) != len(tgt):
        raise DataError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; the two languages "
            f"of the split {name!r} must be aligned line by line."
        )
    return Parallel(name, src, tgt)


def read_parallel(name: str, src_path: Path, tgt_path: Path) -> Parallel:
    """Both sides of a split, read and checked."""
    return aligned(name, src_path, read_lines(src_path), tgt_path, read_lines(tgt_path))
