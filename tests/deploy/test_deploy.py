"""The shipped deployment files, checked offline: the Ray cluster-launcher config by Ray's own
validator (what ``ray up`` runs before it calls any cloud), and the commands the manifests run
against ablab's own CLI and specs."""

import copy
import shlex
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml

from ablab.experiments.cli import app
from ablab.experiments.spec.expand import load_plan

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "ray-cluster-aws.yaml"
RAYJOB = ROOT / "deploy" / "rayjob.yaml"


def validate_launcher(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_the_cluster_launcher_config_is_valid_for_ray_up():
    config = yaml.safe_load(LAUNCHER.read_text())
    validate_launcher(config)
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"]["GPU"] == 0  # trials run on the GPU workers
    assert nodes["gpu_worker"]["resources"]["GPU"] >= 1
    assert any("ablab[server]" in command for command in config["setup_commands"])
    assert nodes["gpu_worker"]["min_workers"] >= 1  # ablab checks the nodes that are up at its start
    assert any("mount" in c and "/srv/ablab" in c for c in config["initialization_commands"])  # shared


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda c: c.update(bogus_key=1), "bogus_key"),
        (lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU="one"), "'one'"),
        (lambda c: c.update(head_node_type="nowhere"), "head_node_type"),
    ],
)
def test_the_validator_would_catch_a_broken_launcher_config(change, error):
    config = yaml.safe_load(LAUNCHER.read_text())
    change(config)
    with pytest.raises((jsonschema.ValidationError, ValueError), match=error):  # schema, or Ray's own check
        validate_launcher(config)


def test_the_rayjob_runs_a_shipped_spec_with_options_ablab_run_has():
    job = yaml.safe_load(RAYJOB.read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["ablab", "run"]
    load_plan(ROOT / words[2])  # the spec it names plans
    command = typer.main.get_command(app).commands["run"]
    options = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    assert {w for w in words[3:] if w.startswith("--")} <= options
    cluster = job["spec"]["rayClusterSpec"]
    workers = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    assert workers["limits"]["nvidia.com/gpu"] == "1"
    storage = words[words.index("--storage") + 1]
    for pod in (cluster["headGroupSpec"], cluster["workerGroupSpecs"][0]):
        mounts = pod["template"]["spec"]["containers"][0]["volumeMounts"]
        assert any(m["mountPath"] == storage for m in mounts)  # every pod sees the sweep's state
