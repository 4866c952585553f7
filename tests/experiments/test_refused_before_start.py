"""What ablab run refuses before anything starts (no Ray, no MLflow run, no folder written), with
exit code 2 and a message that names the field or file and the fix: malformed specs, resources
the machine lacks, a store it cannot write, a --resume with nothing (or an older ablab's state)
to resume, a local store for a cluster on other machines."""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
import types

import pytest

from ablab.experiments.spec.expand import load_plan
from ablab.experiments.sweep.ray_cluster import refuse_local_store
from ablab.trainer.errors import UserError
from tests.experiments.conftest import ablab
from tests.experiments.helpers import write_spec
from tests.experiments.malformed_specs import MALFORMED, spec_text


def test_a_local_store_is_refused_for_a_cluster_on_other_machines():
    local = {"127.0.0.1", "10.0.0.5"}
    refuse_local_store("sqlite:////x/mlflow.db", "10.0.0.5:6379", {"10.0.0.5"}, local)  # one machine: fine
    refuse_local_store("http://10.0.0.5:5000", "10.0.0.5:6379", {"10.0.0.5", "10.0.0.6"}, local)
    with pytest.raises(UserError, match=r"other machines \(10.0.0.6\).*--tracking-uri http://"):
        refuse_local_store("sqlite:////x/mlflow.db", "10.0.0.5:6379", {"10.0.0.5", "10.0.0.6"}, local)


def test_a_spec_needing_more_than_the_machine_fails_fast(tmp_path):
    cpus = (os.cpu_count() or 1) + 1  # more than this machine, whatever it has
    spec = write_spec(tmp_path, "greedy", resources={"cpus": cpus})
    started = time.monotonic()
    out = ablab("run", spec, cwd=tmp_path)
    assert out.returncode == 2 and f"needs {cpus} CPUs and 0 GPUs" in out.stderr, out.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "runs").exists()


def test_an_unwritable_store_is_refused_before_ray_starts(tmp_path):
    spec = write_spec(tmp_path, "nowhere")
    (tmp_path / "mlruns").write_text("a file where the store's folder should be")
    out = ablab("run", spec, cwd=tmp_path)
    assert out.returncode == 2 and "mlruns is a file, not a folder" in out.stderr, out.stderr
    assert "ray" not in out.stderr.lower() and not (tmp_path / "runs").exists()


def test_resume_without_an_interrupted_sweep_is_a_clear_error(tmp_path):
    spec = write_spec(tmp_path, "fresh")
    out = ablab("run", spec, "--resume", cwd=tmp_path)
    assert out.returncode == 2 and "no interrupted sweep of fresh" in out.stderr


def test_resume_of_a_state_saved_before_the_one_namespace_is_a_clear_error(tmp_path, monkeypatch):
    """Tune pickles its state with module names; those of an older ablab (``experiments.trial``)
    no longer import, and Tune's restore would fail deep inside Ray."""
    spec = write_spec(tmp_path, "old")
    state = tmp_path / "runs" / "sweeps" / "old"
    (state / "tune").mkdir(parents=True)
    (state / "ablab_sweep.json").write_text(
        json.dumps({"spec_hash": load_plan(spec).hash, "parent_run_id": "x"})
    )
    old_module = types.ModuleType("experiments.trial")
    monkeypatch.setitem(sys.modules, "experiments.trial", old_module)
    old_module.run_trial = type("run_trial", (), {"__module__": "experiments.trial"})
    (state / "tune" / "tuner.pkl").write_bytes(pickle.dumps({"trainable": old_module.run_trial}))

    out = ablab("run", spec, "--resume", cwd=tmp_path)
    assert out.returncode == 2 and "saved by an older ablab" in out.stderr, out.stderr
    assert "experiments.trial" in out.stderr and "run it without --resume" in out.stderr
    assert "Traceback" not in out.stderr and not list(tmp_path.glob("mlruns/*"))


@pytest.mark.parametrize("text, fragment", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_specs_exit_2_before_anything_starts(tmp_path, monkeypatch, text, fragment):
    import ray
    from typer.testing import CliRunner

    from ablab.experiments.cli import app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_bytes(spec_text(text))
    out = CliRunner().invoke(app, ["run", str(path)])
    assert out.exit_code == 2, out.output
    assert fragment in out.output and "Traceback" not in out.output
    assert not ray.is_initialized()
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "runs").exists()
