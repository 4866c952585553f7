"""Ray clusters the tests start on this machine with `ray start`: every node on loopback, in a
Ray temp folder of the cluster's own, so that a test finds (and kills) its nodes' processes and
no others. Never `ray stop`: it stops every Ray on the machine."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import script
from tests.experiments.helpers import free_port, processes

NODE_ENV = "ABLAB_TEST_NODE"
"""Set in each worker node's `ray start` environment; its raylet and workers inherit it."""


def _start(args: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(
        [script("ray"), "start", *args, "--disable-usage-stats"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]


class Cluster:
    """A head node (by default without CPUs: it only schedules) and named worker nodes. ``env``
    is the environment of its nodes, and the one a driver joining it needs."""

    def __init__(self, ray_tmpdir: str):
        self.ray_tmpdir = ray_tmpdir
        self.port = free_port()
        self.env = {
            **os.environ,
            # Ray's token authentication, with a token of this cluster's own: its nodes and the
            # drivers joining it agree without a token file under the user's home (a fresh
            # machine has none, and `ray start` in token mode refuses to start without one)
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_TMPDIR": ray_tmpdir,
            # a raylet starts one idle worker per CPU for each driver that joins; a trial's worker
            # carries the sweep's runtime environment, so none of them would ever be used
            "RAY_prestart_worker_first_driver": "0",
        }
        self.address = f"127.0.0.1:{self.port}"  # every node on loopback, as servers here must be

    def start(self, workers: dict[str, dict], head_cpus: int = 0) -> Cluster:
        """Start the head with ``head_cpus`` CPUs, then one node per entry of ``workers``
        (``{"cpus": n, "gpus": m}``), each carrying the custom resource ``ablab_node_<name>``."""
        loopback = ["--node-ip-address", "127.0.0.1"]
        head = ["--head", "--port", str(self.port), "--num-cpus", str(head_cpus), "--num-gpus", "0"]
        _start([*head, "--include-dashboard=false", *loopback], self.env)
        for name, resources in workers.items():
            flags = [
                "--num-cpus",
                str(resources["cpus"]),
                "--resources",
                json.dumps({f"ablab_node_{name}": 1}),
            ]
            if resources.get("gpus"):
                flags += ["--num-gpus", str(resources["gpus"])]
            _start(["--address", self.address, *loopback, *flags], {**self.env, NODE_ENV: name})
        return self

    def node_names(self) -> dict[str, str]:
        """Node id (its first 12 characters, as runs record it) -> worker name, from Ray itself."""
        code = (
            "import json, sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR');"
            "print(json.dumps({n['NodeID'][:12]: [k[len('ablab_node_'):] for k in n['Resources']"
            " if k.startswith('ablab_node_')] for n in ray.nodes()}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, self.address],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return {node: names[0] for node, names in json.loads(out.stdout.splitlines()[-1]).items() if names}

    def kill(self, name: str) -> list[int]:
        """SIGKILL every process of worker node ``name``: its raylet, object store and workers."""
        pids = [pid for pid in processes("", self.ray_tmpdir) if _env_has(pid, f"{NODE_ENV}={name}")]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def stop(self) -> None:
        for pid in processes("", self.ray_tmpdir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _env_has(pid: int, entry: str) -> bool:
    try:
        return entry.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
