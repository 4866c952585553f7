import gzip
import http.server
import shutil
import threading
from functools import partial

import pytest

from ablab.trainer.data import multi30k as data
from ablab.trainer.data import text_files
from ablab.trainer.errors import DataError
from tests.conftest import multi30k_split

NEEDED = [data.file_name(split, lang) for split in ("train", "val") for lang in ("en", "de")]


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder, standing in for the dataset's repository."""
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/raw/"
    server.shutdown()


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("MULTI30K_DIR", raising=False)


def test_explicit_dir_wins_over_environment(multi30k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MULTI30K_DIR", str(tmp_path))  # empty: would fail if consulted
    assert data.resolve_dir(str(multi30k_dir), NEEDED) == multi30k_dir


def test_environment_then_cache(multi30k_dir, tmp_path, monkeypatch, no_env):
    monkeypatch.setenv("MULTI30K_DIR", str(multi30k_dir))
    assert data.resolve_dir(None, NEEDED) == multi30k_dir
    monkeypatch.delenv("MULTI30K_DIR")
    cache = tmp_path / "cache"
    (cache / "multi30k").mkdir(parents=True)
    for name in NEEDED:
        shutil.copy(multi30k_dir / name, cache / "multi30k" / name)
    monkeypatch.setenv("ABLAB_MULTI30K_URL", "http://127.0.0.1:9/")  # a download would fail
    assert data.resolve_dir(None, NEEDED, cache_dir=str(cache)) == cache / "multi30k"


def test_explicit_dir_missing_files_is_an_error(tmp_path):
    with pytest.raises(DataError, match="data.dir points at .* lacks train.en.gz"):
        data.resolve_dir(str(tmp_path), NEEDED)


def test_download_verifies_checksums(multi30k_dir, file_server, tmp_path, monkeypatch, no_env):
    served, url = file_server
    (served / "raw").mkdir()
    for name in NEEDED:
        shutil.copy(multi30k_dir / name, served / "raw" / name)
    monkeypatch.setenv("ABLAB_MULTI30K_URL", url)
    folder = data.resolve_dir(None, NEEDED, cache_dir=str(tmp_path / "cache"))
    assert folder == tmp_path / "cache" / "multi30k"
    for name in NEEDED:
        assert data.sha256_of(folder / name) == data.SHA256[name]
    splits = [multi30k_split(folder, s) for s in ("train", "val")]
    assert [len(s) for s in splits] == [29000, 1014]


def test_download_with_wrong_checksum_keeps_nothing(multi30k_dir, file_server, tmp_path, monkeypatch, no_env):
    served, url = file_server
    (served / "raw").mkdir()
    for name in NEEDED:
        shutil.copy(multi30k_dir / name, served / "raw" / name)
    with gzip.open(served / "raw" / "val.de.gz", "wt") as f:
        f.write("tampered\n")
    monkeypatch.setenv("ABLAB_MULTI30K_URL", url)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.resolve_dir(None, NEEDED, cache_dir=str(tmp_path / "cache"))
    assert not (tmp_path / "cache" / "multi30k" / "val.de.gz").exists()
    assert not list((tmp_path / "cache" / "multi30k").glob("*.part"))


def test_offline_error_names_all_three_fixes(tmp_path, monkeypatch, no_env):
    monkeypatch.setenv("ABLAB_MULTI30K_URL", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(DataError) as err:
        data.resolve_dir(None, NEEDED, cache_dir=str(tmp_path))
    message = str(err.value)
    assert "data.dir" in message and "MULTI30K_DIR" in message and str(tmp_path / "multi30k") in message


def test_pinned_checksums_match_the_shared_copy(multi30k_dir):
    for name, digest in data.SHA256.items():
        assert data.sha256_of(multi30k_dir / name) == digest, name


def _write(path, lines: bytes):
    with gzip.open(path, "wb") as f:
        f.write(lines)


def test_reading_checks_contents(tmp_path):
    _write(tmp_path / "train.en.gz", b"a b\nc d\n")
    _write(tmp_path / "train.de.gz", b"x\n")
    with pytest.raises(DataError, match="has 2 lines but .*train.de.gz has 1"):
        text_files.read_parallel("train", tmp_path / "train.en.gz", tmp_path / "train.de.gz")
    _write(tmp_path / "val.en.gz", b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"val.en.gz, line 2: invalid UTF-8"):
        text_files.read_lines(tmp_path / "val.en.gz")
    _write(tmp_path / "empty.gz", b"")
    with pytest.raises(DataError, match="empty"):
        text_files.read_lines(tmp_path / "empty.gz")
    _write(tmp_path / "long.gz", b"ok\n" + b"x" * 5000 + b"\n")
    with pytest.raises(DataError, match="line 2: 5000 characters"):
        text_files.read_lines(tmp_path / "long.gz")
    (tmp_path / "notgz.gz").write_bytes(b"plain text")
    with pytest.raises(DataError, match="cannot read it as gzip"):
        text_files.read_lines(tmp_path / "notgz.gz")


def test_lines_keep_their_text(multi30k_dir):
    split = multi30k_split(multi30k_dir, "val")
    assert len(split.src) == len(split.tgt) == 1014
    assert all(s and not s.endswith(("\n", "\r")) for s in split.src)
