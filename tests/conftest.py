"""Shared fixtures: where Multi30k is, an isolated cache, and tiny configs that train fast."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

from ablab.trainer.config.schema import Config, from_dict
from ablab.trainer.data.multi30k import file_name
from ablab.trainer.data.text_files import Parallel, read_parallel

REPO = Path(__file__).resolve().parent.parent
KERNEL_LIMITS = {"ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"}
"""Variables that hold PyTorch's CPU kernels below what the CPU has (how an AVX2-only CPU's slow
bf16 path is tried on a CPU with native bf16)."""


def _multi30k_dir() -> Path:
    env = os.environ.get("MULTI30K_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "multi30k"
    if not (path / "train.en.gz").is_file():
        raise RuntimeError(
            f"Multi30k not found at {path}; set MULTI30K_DIR to the folder with train.en.gz etc."
        )
    return path.resolve()


IN_PROCESS = ("tests/trainer/", "tests/analysis/")
"""Where the integration tests train or open a store in their own process: no Ray, no server."""


def pytest_itemcollected(item):
    """An integration test under :data:`IN_PROCESS` is also marked ``in_process``: ``make test``
    runs those after the unit tests, beside the ones that start Ray and servers."""
    where = item.path.relative_to(REPO).as_posix()
    if item.get_closest_marker("integration") and where.startswith(IN_PROCESS):
        item.add_marker("in_process")


def pytest_collection_modifyitems(items):
    """Tests marked ``waits`` run first (the order of the rest kept): ``make test`` runs the unit
    tests in a session beside the integration tests, and a test that mostly waits leaves them a
    core where a sweep would take both."""
    items.sort(key=lambda item: item.get_closest_marker("waits") is None)


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Tokenizer cache and MLflow store of the test session live in a temporary folder."""
    cache = tmp_path_factory.mktemp("cache")
    saved = {
        k: os.environ.get(k)
        for k in (
            "XDG_CACHE_HOME",
            "MLFLOW_TRACKING_URI",
            "MULTI30K_DIR",
            "ABLAB_LIVE_SECONDS",
            "ABLAB_SYSTEM_SECONDS",
        )
    }
    os.environ["XDG_CACHE_HOME"] = str(cache)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MULTI30K_DIR"] = str(_multi30k_dir())
    # every run of the tests (trials of sweeps too) delivers its metrics each second, not each 30 s,
    # so that the fault and outage tests check that delivery too, and samples its system metrics
    os.environ["ABLAB_LIVE_SECONDS"] = os.environ["ABLAB_SYSTEM_SECONDS"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def statsmodels_holm(monkeypatch):
    """statsmodels' Holm (``multipletests(p, alpha, method="holm")``: rejected, adjusted p) as a
    reference, without the full garbage collection it runs on every call: in a test session
    holding PyTorch and matplotlib that takes half a second a call."""
    from statsmodels.stats.multitest import multipletests

    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
    return lambda p, alpha=0.05: multipletests(p, alpha, method="holm")[:2]


@pytest.fixture(scope="session")
def multi30k_dir() -> Path:
    return _multi30k_dir()


def multi30k_split(folder: Path, split: str, src: str = "en", tgt: str = "de") -> Parallel:
    """One Multi30k split, read and checked as the trainer reads it."""
    return read_parallel(split, folder / file_name(split, src), folder / file_name(split, tgt))


def script(name: str) -> str:
    """A console script of the environment running the tests (which need not be on PATH)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise RuntimeError(f"{name} is not installed beside {sys.executable}; run `make install`")
    return str(path)


def tiny_dict(**sections) -> dict:
    """A config that trains in seconds: 1,000 pairs, a 2-layer d=32 model, 1,000-word BPE."""
    raw = {
        "data": {"train_subset": 1000, "max_tokens": 1024, "vocab_size": 1000},
        "model": {"layers": 2, "d_model": 32, "heads": 2, "ff_dim": 64},
        "schedule": {"name": "constant", "warmup_steps": 10},
        "optim": {"lr": 0.003},
        "train": {"epochs": 2, "threads": 2, "log_every": 5},
        "eval": {"val_sentences": 50, "test_sentences": 100, "beam_size": 2, "batch_sentences": 128},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def tiny_config(**sections) -> Config:
    return from_dict(tiny_dict(**sections))
