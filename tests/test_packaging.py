"""ablab installs one import name, ``ablab``: the three top-level folders are its subpackages
(``ablab.trainer``, ``ablab.experiments``, ``ablab.analysis``; pyproject.toml maps them)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from tests.conftest import REPO

FOLDERS = {"trainer": "ablab.trainer", "experiments": "ablab.experiments", "analysis": "ablab.analysis"}
SOURCES = ["trainer", "experiments", "analysis", "benchmarks", "tests", "deploy"]


def _bare_imports(path: Path) -> list[str]:
    """Imports in ``path`` of a folder's bare name (``trainer.x``), which only the repository
    root on sys.path would resolve: an installed ablab has no such module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in FOLDERS]
    return found


def test_no_import_of_a_bare_folder_name():
    files = [p for folder in SOURCES for p in (REPO / folder).rglob("*.py")]
    assert len(files) > 150
    assert [hit for p in files for hit in _bare_imports(p)] == []


def test_every_package_folder_is_packaged():
    """A folder with an ``__init__.py`` missing from pyproject's list would be missing from the wheel."""
    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join([FOLDERS[init.relative_to(REPO).parts[0]], *init.relative_to(REPO).parts[1:-1]])
        for folder in FOLDERS
        for init in (REPO / folder).rglob("__init__.py")
    }
    data = {p for p in packages if p.endswith((".configs", ".specs", ".templates"))}
    assert folders == packages - data


def test_the_wheel_adds_one_import_name(tmp_path):
    """The built wheel, installed into a fresh environment, adds ``ablab`` and its dist-info only;
    every module imports from there (the dependencies from this environment, read through
    PYTHONPATH, which runs no .pth file: the editable install is not seen) and the shipped data
    files are there."""
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: the build writes build/ beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "--wheel-dir", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("ablab-*.whl")

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    before = {p.name for p in site.iterdir()}
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--no-deps",
        str(wheel),
    ]
    subprocess.run(pip, check=True, capture_output=True)
    added = {p.name for p in site.iterdir()} - before
    assert {name for name in added if not name.endswith(".dist-info")} == {"ablab"}

    check = """
import importlib, pkgutil, sys
from importlib import resources
import ablab
modules = [m.name for m in pkgutil.walk_packages(ablab.__path__, "ablab.")]
for name in modules:
    assert importlib.import_module(name).__file__.startswith(sys.argv[1]), name
assert resources.files("ablab.analysis").joinpath("critical_values.csv").is_file()
assert resources.files("ablab.analysis").joinpath("templates/report.html.j2").is_file()
assert resources.files("ablab.experiments.specs").joinpath("smoke.yaml").is_file()
for bare in ("trainer", "experiments", "analysis"):
    try:
        importlib.import_module(bare)
    except ModuleNotFoundError:
        continue
    raise AssertionError(bare + " imports")
print(len(modules))
"""
    deps = sysconfig.get_paths()["purelib"]
    out = subprocess.run(
        [python, "-c", check, str(site)],
        cwd=tmp_path,
        env={"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == sum(1 for folder in FOLDERS for _ in (REPO / folder).rglob("*.py"))
