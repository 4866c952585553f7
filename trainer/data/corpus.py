"""Where a config's corpus lives: the source and target file of every split it reads.

Multi30k's files are found (or downloaded) as :mod:`ablab.trainer.data.multi30k` says; a corpus from files
names them in ``data.files``. Paths expand ``~`` and ``$VARIABLES``; a relative path is relative
to ``data.files.root``, and a relative root (or path without one) to the folder ``ablab`` runs in.
Trial workers of a sweep run elsewhere; the sweep tells them that folder in :data:`WORKDIR_ENV`.
Before any run starts, every file is found: a missing file or an unset variable is a
:class:`~ablab.trainer.errors.DataError` naming the config key. Contents (UTF-8, aligned splits, line
lengths) are checked where a trial reads them, before it trains (:mod:`ablab.trainer.data.text_files`).
The files' contents are part of a run's identity (:func:`content_fingerprint`), their names and
folders are not.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ablab.trainer.data.config import DataConfig
from ablab.trainer.data.multi30k import file_name, resolve_dir
from ablab.trainer.data.text_files import read_bytes
from ablab.trainer.errors import DataError

WORKDIR_ENV = "ABLAB_WORKDIR"
"""The folder relative data paths are relative to, where it is not the current one."""


@dataclass(frozen=True)
class SplitFiles:
    """One split's two files."""

    name: str
    src: Path
    tgt: Path


def working_dir() -> Path:
    return Path(os.environ.get(WORKDIR_ENV) or os.getcwd())


def expand(text: str, key: str, base: Path) -> Path:
    """``text`` with ``~`` and ``$VARIABLES`` expanded, made absolute against ``base``."""
    expanded = os.path.expandvars(os.path.expanduser(text))
    unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise DataError(
            f"{key} is {text!r}, but the environment variable {unset[0]} is not set; export it "
            "or write the path out."
        )
    path = Path(expanded)
    return (path if path.is_absolute() else base / path).resolve()


@functools.lru_cache(maxsize=256)
def _text_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of the file's text (gunzipped): the same sentences gzipped again hash the same.
    Kept per (path, size, modification time): a file rewritten within the file system's time
    resolution at its old size would be missed, as by make."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def content_fingerprint(data: DataConfig) -> str | None:
    """SHA-256 over the contents of every file a corpus 'files' names (None for Multi30k, whose
    files are pinned): part of a run's identity, so that an edited corpus is a new run."""
    if data.files is None:
        return None
    digest = hashlib.sha256()
    for name, split in split_files(data, tuple(data.files.tests)).items():
        digest.update(name.encode())
        for path in (split.src, split.tgt):
            stat = path.stat()
            digest.update(_text_sha256(path, stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def split_files(data: DataConfig, test_sets: tuple[str, ...]) -> dict[str, SplitFiles]:
    """Train, val and ``test_sets``: each split's files, checked to exist."""
    names = ("train", "val", *test_sets)
    if data.files is None:
        needed = [file_name(s, lang) for s in names for lang in (data.src_lang, data.tgt_lang)]
        folder = resolve_dir(data.dir, needed, data.cache_dir)
        return {
            s: SplitFiles(s, folder / file_name(s, data.src_lang), folder / file_name(s, data.tgt_lang))
            for s in names
        }
    files = data.files
    base = working_dir() if files.root is None else expand(files.root, "data.files.root", working_dir())
    pairs = {"train": files.train, "val": files.val, **{t: files.tests[t] for t in test_sets}}
    found, missing = {}, []
    for name, pair in pairs.items():
        key = f"data.files.{name}" if name in ("train", "val") else f"data.files.tests.{name}"
        src, tgt = expand(pair.src, f"{key}.src", base), expand(pair.tgt, f"{key}.tgt", base)
        missing += [
            f"{key}.{side} ({path})" for side, path in (("src", src), ("tgt", tgt)) if not path.is_file()
        ]
        found[name] = SplitFiles(name, src, tgt)
    if missing:
        raise DataError(
            f"no such file: {'; '.join(missing)}. Relative paths are relative to "
            f"{'data.files.root ' if files.root else 'the folder ablab runs in '}({base}); fix the paths "
            "or set data.files.root."
        )
    return found
