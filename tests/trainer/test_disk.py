import shutil
from collections import namedtuple

import pytest

from ablab.trainer.disk import check_store_writable, check_writable
from ablab.trainer.errors import UserError

Usage = namedtuple("Usage", "total used free")


def test_a_missing_folder_under_a_writable_one_is_fine_and_not_made(tmp_path):
    check_writable(tmp_path / "runs" / "deep", "checkpoints")
    assert not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == []  # the write check leaves nothing


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "mlruns").write_text("not a folder")
    with pytest.raises(UserError, match=r"mlruns is a file, not a folder"):
        check_store_writable(f"sqlite:///{tmp_path}/mlruns/mlflow.db")


def test_an_unwritable_location_is_refused():
    with pytest.raises(UserError, match=r"cannot write checkpoints there"):
        check_writable("/proc/ablab-runs", "checkpoints")  # not writable, even for root


def test_a_nearly_full_disk_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(
        UserError, match=r"only 1 MiB free on its disk, less than the 512 MiB checkpoints need"
    ):
        check_writable(tmp_path, "checkpoints")


def test_only_a_local_store_is_checked_here_a_server_checks_its_own_disk(tmp_path, monkeypatch):
    checked = []
    monkeypatch.setattr(
        "ablab.trainer.disk.check_writable", lambda path, what: checked.append((str(path), what))
    )
    check_store_writable("http://127.0.0.1:5000")
    check_store_writable("https://mlflow.example.org")
    assert checked == []
    check_store_writable(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    assert checked == [(f"{tmp_path}/mlruns", "the MLflow store")]
