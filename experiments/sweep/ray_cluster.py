"""The Ray side of a sweep: where trials run, checked before anything starts.

Ray starts on this machine (all its CPUs and GPUs) or joins the cluster at ``--address``; trial
workers get the environment they need (:func:`worker_env`). A spec whose trial needs more CPUs or
GPUs than any node has is refused before Tune starts, as is a cluster with nodes on other
machines that would have to log to a store on this machine's disk.
"""

from __future__ import annotations

import logging
import os
import socket

import torch

from ablab.experiments.spec.expand import Plan, SpecError, Trial
from ablab.trainer.data.corpus import WORKDIR_ENV, split_files
from ablab.trainer.errors import UserError
from ablab.trainer.hardware.usage import USAGE_ENV
from ablab.trainer.tracking.mlflow_tracker import LIVE_ENV, PATIENCE_ENV

FORWARDED = ("MULTI30K_DIR", "XDG_CACHE_HOME", "ABLAB_MULTI30K_URL", PATIENCE_ENV, LIVE_ENV, USAGE_ENV)
"""Environment variables of the driver that the trial workers see too."""
MLFLOW_CLIENT = tuple(
    f"MLFLOW_TRACKING_{name}"
    for name in (
        "USERNAME",
        "PASSWORD",
        "TOKEN",
        "AUTH",
        "INSECURE_TLS",
        "SERVER_CERT_PATH",
        "CLIENT_CERT_PATH",
    )
)
"""How MLflow's client authenticates to a tracking server, forwarded with every ``MLFLOW_HTTP_*``
(retries, timeouts): a cluster's nodes do not have the driver's shell. Not ``MLFLOW_TRACKING_URI``
(each trial is given its store) nor ``MLFLOW_RUN_ID`` (a trial opens its own run)."""


def worker_env() -> dict[str, str]:
    """The environment of the trial workers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k in FORWARDED or k in MLFLOW_CLIENT or k.startswith("MLFLOW_HTTP_")
    }
    # relative data paths resolve in the trials as in the driver
    env[WORKDIR_ENV] = os.environ.get(WORKDIR_ENV) or os.getcwd()
    env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # Trial workers run trial after trial; with glibc's defaults their freed memory stays
    # fragmented (a worker grew to 10 GB over five trials). Two arenas and a heap trim after each
    # trial (experiments/sweep/trial.py) keep it at 2-3 GB. Not a trim threshold: setting one turns off
    # glibc's adaptive mmap threshold, every tensor above 128 kB is then mapped and unmapped at
    # each step, and training ran at half speed (the smoke baseline: 127 s against 66-73 s).
    env["MALLOC_ARENA_MAX"] = os.environ.get("MALLOC_ARENA_MAX", "2")
    return env


def check_data(plan: Plan) -> None:
    """Every trial's corpus files exist (Multi30k's are downloaded now), before anything starts."""
    seen = set()
    for trial in plan.trials:
        key = (trial.config.data.model_dump_json(), trial.config.eval.test_sets)
        if key not in seen:
            seen.add(key)
            split_files(trial.config.data, trial.config.eval.test_sets)


def _need(trials: list[Trial]) -> tuple[float, float]:
    return max(t.resources.cpus for t in trials), max(t.resources.gpus for t in trials)


def refuse_resources(plan: Plan, cpus: float, gpus: float, where: str) -> None:
    need_cpus, need_gpus = _need(plan.trials)
    if need_cpus > cpus or need_gpus > gpus:
        raise SpecError(
            f"{plan.path}: a trial needs {need_cpus:g} CPUs and {need_gpus:g} GPUs but {where} has at most "
            f"{cpus:g} CPUs and {gpus:g} GPUs per node; lower resources.cpus/gpus in the spec, or run on a "
            "cluster that has them (--address)."
        )


def refuse_local_resources(plan: Plan) -> None:
    """This machine has what every trial asks for (Ray on this machine only)."""
    refuse_resources(plan, os.cpu_count() or 1, torch.cuda.device_count(), "this machine")


def _node_capacity() -> tuple[float, float, set[str]]:
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0)
    return cpus, gpus, {n["NodeManagerAddress"] for n in nodes}


def _local_addresses(candidates: set[str]) -> set[str]:
    """Of ``candidates``, the addresses of this machine: loopback, and any this process can bind
    a socket to (an interface of its own; another machine's address cannot be bound)."""
    local = {"127.0.0.1", "localhost"}
    for ip in candidates - local:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((ip, 0))
            local.add(ip)
        except OSError:
            pass
    return local


def start_ray(plan: Plan, address: str | None, uri: str, env: dict[str, str]) -> None:
    import ray

    runtime_env = {"env_vars": env}
    if address is None:
        ray.init(
            num_cpus=os.cpu_count(),
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        return
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
    cpus, gpus, node_ips = _node_capacity()
    try:
        refuse_local_store(uri, address, node_ips, _local_addresses(node_ips))
        refuse_resources(plan, cpus, gpus, f"the cluster at {address}")
    except UserError:
        ray.shutdown()
        raise


def refuse_local_store(uri: str, address: str, node_ips: set[str], local_ips: set[str]) -> None:
    """A cluster with nodes on other machines cannot log to a store on this one's disk."""
    remote = node_ips - local_ips
    if remote and not uri.startswith(("http://", "https://")):
        raise UserError(
            f"the cluster at {address} has nodes on other machines ({', '.join(sorted(remote))}) but the "
            f"tracking store {uri} is local to this one: trials there could not log to it. Start an MLflow "
            "tracking server reachable from every node (mlflow server --backend-store-uri ... --host HOST "
            "--port 5000) and pass --tracking-uri http://HOST:5000."
        )
