"""Multi30k task 1 (raw, cased, untokenized): finding, downloading and reading the files.

Where the files come from, first match wins:

1. an explicit folder (``data.dir`` in the config),
2. the ``MULTI30K_DIR`` environment variable,
3. the user cache (``data.cache_dir``, else ``$XDG_CACHE_HOME/ablab``, else ``~/.cache/ablab``),
   under ``multi30k/``,
4. a download from the dataset's public repository into that cache, each file verified
   against the SHA-256 pinned in :data:`SHA256` before it is used.

An explicit folder or ``MULTI30K_DIR`` that lacks a needed file is an error, never a silent
fallback to another copy. The files are read and checked like any corpus
(:mod:`ablab.trainer.data.text_files`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ablab.trainer.errors import DataError

DOWNLOAD_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
"""Where the raw task-1 files are published; ``ABLAB_MULTI30K_URL`` overrides it (mirrors)."""

SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
}
"""SHA-256 of every raw task-1 file in English and German (multi30k/dataset, master)."""


def file_name(split: str, lang: str) -> str:
    return f"{split}.{lang}.gz"


def cache_root(cache_dir: str | None = None) -> Path:
    """The ablab cache: ``cache_dir``, else ``$XDG_CACHE_HOME/ablab``, else ``~/.cache/ablab``."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "ablab").resolve()


def _missing(folder: Path, names: list[str]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(name: str, dest: Path, base_url: str) -> None:
    """Fetch one file into ``dest``, verify its pinned SHA-256, then move it into place."""
    url = base_url.rstrip("/") + "/" + name
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        actual = sha256_of(Path(tmp))
        if actual != SHA256[name]:
            raise DataError(
                f"{url}: checksum mismatch (SHA-256 {actual}, expected {SHA256[name]}); the "
                "download is corrupt or not the Multi30k release ablab pins. Nothing was kept."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_dir(explicit: str | None, names: list[str], cache_dir: str | None = None) -> Path:
    """The folder holding every file in ``names``, downloading into the cache if need be."""
    for source, folder in (("data.dir", explicit), ("MULTI30K_DIR", os.environ.get("MULTI30K_DIR"))):
        if folder:
            path = Path(folder).expanduser().resolve()
            missing = _missing(path, names)
            if missing:
                raise DataError(
                    f"{source} points at {path}, which lacks {', '.join(missing)}; point it at "
                    "the folder with the Multi30k task-1 raw files (e.g. train.en.gz), or unset "
                    "it to use the cache or a download."
                )
            return path
    cached = cache_root(cache_dir) / "multi30k"
    missing = _missing(cached, names)
    if not missing:
        return cached
    base_url = os.environ.get("ABLAB_MULTI30K_URL", DOWNLOAD_URL)
    try:
        for name in missing:
            _download(name, cached / name, base_url)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(
            f"Multi30k not found and the download from {base_url} failed ({exc}). Fix it one of "
            f"three ways: set data.dir in the config to the folder with the raw files "
            f"(train.en.gz, ...); or export MULTI30K_DIR=/path/to/multi30k; or put the files in "
            f"the cache folder {cached}."
        ) from None
    return cached
