"""The code base stays formatted and lint-clean (ruff, configured in pyproject.toml)."""

import subprocess
from pathlib import Path

from tests.conftest import script

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["trainer", "experiments", "analysis", "benchmarks", "tests"]


def ruff(*args):
    return subprocess.run([script("ruff"), *args, *PACKAGES], cwd=ROOT, capture_output=True, text=True)


def test_lint_clean():
    out = ruff("check")
    assert out.returncode == 0, out.stdout


def test_formatted():
    out = ruff("format", "--check")
    assert out.returncode == 0, out.stdout
