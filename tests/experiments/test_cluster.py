"""A Ray cluster of several nodes on this machine, for real: separate `ray start` processes, each
worker node with its own CPU count, a custom resource naming it, and an environment marker by
which the test finds (and kills) that node's processes and no others."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from ablab.trainer.hardware.device import device_kind
from ablab.trainer.hardware.precision import resolve
from tests.conftest import script
from tests.experiments.conftest import ablab, sqlite_uri
from tests.experiments.helpers import (
    assert_unique_steps,
    most_at_once,
    trial_runs,
    trial_spans,
    wait_for,
    write_spec,
)
from tests.experiments.ray_nodes import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(ray_tmpdir):
    made = Cluster(ray_tmpdir)
    yield made
    made.stop()


def _nodes_of(run, names: dict[str, str]) -> list[str]:
    """The worker names a run's trial ran on, in order."""
    return [names[entry.split("/")[1]] for entry in run.data.tags["ablab.ray_nodes"].split(",")]


def test_trials_spread_over_two_worker_nodes_and_survive_losing_one(tmp_path, cluster):
    cluster.start({"a": {"cpus": 1}, "b": {"cpus": 1}})
    names = cluster.node_names()
    assert sorted(names.values()) == ["a", "b"]
    spec = write_spec(
        tmp_path,
        "nodes",
        ablations={"heads": {"grid": {"model.heads": [1, 4]}}},
        budget={"epochs": 8},
        retries=2,
    )
    uri = sqlite_uri(tmp_path)
    sweep = subprocess.Popen(
        [script("ablab"), "run", str(spec), "--address", cluster.address],
        cwd=tmp_path, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def a_trial_on_b_past_its_first_epoch():
            for run in trial_runs(uri, "ablab/nodes"):
                nodes = run.data.tags.get("ablab.ray_nodes", "")
                on_b = nodes and names.get(nodes.split(",")[-1].split("/")[1]) == "b"
                if on_b and len(MlflowClient(uri).get_metric_history(run.info.run_id, "val/bleu")) >= 2:
                    return run
            return None

        victim = wait_for(a_trial_on_b_past_its_first_epoch, 300, "a trial on node b to finish two epochs")
        killed_at = time.time()
        killed = cluster.kill("b")
        assert killed, "no process of node b was found"
        out, err = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, err[-3000:]

    runs = {r.data.tags["ablab.trial"]: r for r in trial_runs(uri, "ablab/nodes")}
    assert sorted(runs) == ["baseline,seed=1", "heads=1,seed=1", "heads=4,seed=1"]  # one run per trial
    assert len(trial_runs(uri, "ablab/nodes")) == 3
    for run in runs.values():
        assert run.data.tags["ablab.status"] == "finished", run.data.tags
        assert_unique_steps(uri, run.info.run_id)  # every step once, across the attempts
    moved = runs[victim.data.tags["ablab.trial"]]
    assert _nodes_of(moved, names) == ["b", "a"]  # resumed on the surviving node
    assert int(moved.data.tags["ablab.resumed_from_step"]) > 0  # from the checkpoint Tune stored
    assert float(moved.data.tags["ablab.attempt_started"]) > killed_at  # its pace is measured from there
    assert float(moved.data.tags["ablab.trained_seconds_before_attempt"]) > 0  # its clock at the checkpoint
    assert moved.info.end_time / 1000 > killed_at
    assert {n for run in runs.values() for n in _nodes_of(run, names)} == {"a", "b"}
    print(f"node b killed ({len(killed)} processes) while {victim.data.tags['ablab.trial']} trained on it")
    for trial, run in sorted(runs.items()):  # what each trial did: shown with pytest -s
        print(
            trial,
            "nodes",
            _nodes_of(run, names),
            "resumed from",
            run.data.tags.get("ablab.resumed_from_step"),
        )


def test_four_trials_share_one_declared_gpu_and_train_on_cpu(tmp_path, cluster, ray_tmpdir):
    cluster.start({"gpu": {"cpus": 4, "gpus": 1}})
    spec = write_spec(
        tmp_path,
        "gpus",
        ablations={"heads": {"grid": {"model.heads": [1]}}},
        seeds=[1, 2],
        budget={"epochs": 6},
        resources={"cpus": 1, "gpus": 0.25},
    )
    uri = sqlite_uri(tmp_path)
    out = ablab("run", spec, "--address", cluster.address, cwd=tmp_path, env=cluster.env)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = trial_runs(uri, "ablab/gpus")
    assert len(runs) == 4 and all(r.data.tags["ablab.status"] == "finished" for r in runs)
    for run in runs:
        assert run.data.tags["ablab.assigned_gpus"] == "0"  # the device Ray assigned, seen by the trial
        # no CUDA here: trained on the CPU, in the precision 'auto' picks there
        assert run.data.tags["ablab.device_kind"] == device_kind(torch.device("cpu"))
        assert run.data.tags["ablab.precision"] == resolve("auto", torch.device("cpu"))
    spans = trial_spans(uri, runs)
    assert most_at_once(spans) == 4, spans  # all four on the one GPU at the same time
    overlap = min(end for _, end in spans) - max(start for start, _ in spans)
    print(f"4 trials on one declared GPU: all four running together for {overlap / 1000:.1f} s")
    logs = Path(ray_tmpdir).rglob("worker-*.err")
    said = sum(
        "was assigned to this process (CUDA_VISIBLE_DEVICES) but PyTorch" in p.read_text() for p in logs
    )
    assert said >= 1  # the fallback said so in the trial's log

    greedy = write_spec(tmp_path, "greedy", resources={"cpus": 1, "gpus": 2})
    started = time.monotonic()
    out = ablab("run", greedy, "--address", cluster.address, cwd=tmp_path, env=cluster.env)
    assert out.returncode == 2 and "needs 1 CPUs and 2 GPUs" in out.stderr, out.stderr[-2000:]
    assert time.monotonic() - started < 60
