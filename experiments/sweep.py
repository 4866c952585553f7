"""``ablab run``: a spec's trials through Ray Tune, every trial one MLflow run.

Order of work, so that what can be refused is refused before anything starts: the data is
found (or downloaded), the trials' resources are checked against this machine (or, with an
address, against the cluster), the MLflow store, experiment, parent run and one child run per
trial are made in this process, and only then does Tune start the trials. Tune retries a
failing trial from its last checkpoint up to ``retries`` times; a diverged trial is a result
and is not retried. ``--resume`` restores the Tune state of an interrupted sweep; a plain
re-run skips every trial whose run finished and runs the rest from the start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from experiments import runs
from experiments.spec import Plan, SpecError, Trial
from experiments.trial import COMPLETE, TrialPayload, dir_name
from trainer import record
from trainer.config import to_dict
from trainer.data import file_name, resolve_dir
from trainer.disk import check_store_writable, check_writable
from trainer.errors import Unavailable, UserError
from trainer.tracking import PATIENCE_ENV, absolute_uri, first_line, unreachable

STATE_FILE = "ablab_sweep.json"
WORK_DIR = "work"
"""Under a sweep's folder: each trial's trainer work directory (checkpoints, result), by trial."""
LOOPBACK = ("127.", "localhost", "::1")
OOM_RESTARTS = 3
"""Times a sweep continues after Ray's memory monitor killed a trial worker."""


@dataclass
class Summary:
    parent_run_id: str | None
    skipped: list[str] = field(default_factory=list)
    trials: dict[str, dict] = field(default_factory=dict)  # name -> status, bleu, run_id, error
    interrupted: bool = False  # stopped by Ctrl-C: --resume continues it
    seconds: dict[str, float] = field(default_factory=dict)  # phase of the sweep -> wall time

    @property
    def failed(self) -> list[str]:
        return [name for name, t in self.trials.items() if t["status"] not in record.DONE]


def _check_data(plan: Plan) -> None:
    """Every trial's Multi30k files exist (or are downloaded now), before anything starts."""
    seen = set()
    for trial in plan.trials:
        d, e = trial.config.data, trial.config.eval
        key = (d.dir, d.cache_dir, d.src_lang, d.tgt_lang, e.test_sets)
        if key not in seen:
            seen.add(key)
            names = [
                file_name(s, lang)
                for s in ("train", "val", *e.test_sets)
                for lang in (d.src_lang, d.tgt_lang)
            ]
            resolve_dir(d.dir, names, d.cache_dir)


def _need(trials: list[Trial]) -> tuple[float, float]:
    return max(t.resources.cpus for t in trials), max(t.resources.gpus for t in trials)


def _refuse_resources(plan: Plan, cpus: float, gpus: float, where: str) -> None:
    need_cpus, need_gpus = _need(plan.trials)
    if need_cpus > cpus or need_gpus > gpus:
        raise SpecError(
            f"{plan.path}: a trial needs {need_cpus:g} CPUs and {need_gpus:g} GPUs but {where} has at most "
            f"{cpus:g} CPUs and {gpus:g} GPUs per node; lower resources.cpus/gpus in the spec, or run on a "
            "cluster that has them (--address)."
        )


def _node_capacity() -> tuple[float, float, set[str]]:
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0)
    return cpus, gpus, {n["NodeManagerAddress"] for n in nodes}


def _local_addresses() -> set[str]:
    names = {"127.0.0.1", "localhost"}
    try:
        names.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    return names


def _start_ray(plan: Plan, address: str | None, uri: str, env: dict[str, str]) -> None:
    import logging

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
        refuse_local_store(uri, address, node_ips, _local_addresses())
        _refuse_resources(plan, cpus, gpus, f"the cluster at {address}")
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


def _payload(plan: Plan, trial: Trial, uri: str, sweep: runs.SweepRuns, sweep_dir: Path) -> dict[str, Any]:
    return TrialPayload(
        name=trial.name,
        hash=trial.hash,
        config=to_dict(trial.config),
        tags=runs.trial_tags(plan, trial),
        run_id=sweep.run_ids.get(trial.hash),
        tracking_uri=uri,
        experiment=plan.experiment,
        parent_run_id=sweep.parent_run_id,
        metric=plan.spec.search.metric if plan.spec.search else plan.spec.metric,
        work_root=str(sweep_dir / WORK_DIR),
        cpus=trial.resources.cpus,
        gpus=trial.resources.gpus,
    ).params()


def _trainable():
    from ray import tune

    from experiments.trial import run_trial

    return tune.with_resources(
        run_trial,
        lambda params: {
            "cpu": TrialPayload.of(params["trial"]).cpus,
            "gpu": TrialPayload.of(params["trial"]).gpus,
        },
    )


def _run_config(plan: Plan, sweep_dir: Path, name: str, callback) -> Any:
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=str(sweep_dir),
        failure_config=tune.FailureConfig(max_failures=plan.spec.retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[callback],
        verbose=0,
    )


def _tune_grid(plan, payloads, sweep_dir: Path, resume, callback):
    from ray import tune

    path = sweep_dir / "tune"
    tuner = _restored(path) if resume else None
    if tuner is None:
        tuner = tune.Tuner(
            _trainable(),
            param_space={"trial": tune.grid_search(payloads)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=plan.spec.max_concurrent,
                trial_name_creator=lambda t: TrialPayload.of(t.config["trial"]).name,
                trial_dirname_creator=lambda t: dir_name(TrialPayload.of(t.config["trial"]).name),
                reuse_actors=True,  # a worker process runs trial after trial: imports paid once
            ),
            run_config=_run_config(plan, sweep_dir, "tune", callback),
        )
    return _fit(tuner)


def _restored(path: Path):
    """The Tuner of the interrupted sweep saved at ``path``, continuing its unfinished and
    errored trials; None if nothing was saved there."""
    import logging

    from ray import tune

    if not tune.Tuner.can_restore(str(path)):
        return None
    # the restore warns once per trial that had not started yet (no results to read)
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    return tune.Tuner.restore(str(path), _trainable(), resume_unfinished=True, resume_errored=True)


def _fit(tuner) -> tuple[list, bool]:
    """Run the Tuner; returns its results and whether it stopped on Ctrl-C.

    On SIGINT, Tune's handler saves the experiment, ends the run normally and puts back the
    handler it found, while a run that ends by itself leaves Tune's handler in place; so the
    handler installed here is back exactly when Tune caught a Ctrl-C. (The trials' results do
    not tell: Tune marks the trials it stopped as terminated.)"""

    def sigint(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, sigint)
    try:
        results = list(tuner.fit())
        return results, signal.getsignal(signal.SIGINT) is sigint
    except RuntimeError as exc:
        from ray.exceptions import OutOfMemoryError

        if isinstance(exc.__cause__, OutOfMemoryError):
            raise WorkerOutOfMemory(first_line(exc.__cause__)) from exc
        raise
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class WorkerOutOfMemory(Exception):
    """Ray's memory monitor killed a trial worker. Tune's controller (Ray 2.60) does not expect
    that error and stops the whole sweep with it; the driver restarts it from its saved state."""


def _tune_search(plan, payloads, sweep_dir: Path, resume, callback):
    """One Optuna search per point (arm or grid point), with the first seed."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    search = plan.spec.search
    domains = {
        "loguniform": lambda d: tune.loguniform(*d.loguniform),
        "uniform": lambda d: tune.uniform(*d.uniform),
        "randint": lambda d: tune.randint(*d.randint),
        "choice": lambda d: tune.choice(d.choice),
    }
    results = []
    for payload in payloads:
        name = "tune-" + TrialPayload.of(payload).name.replace(",", "_")
        path = sweep_dir / name
        tuner = _restored(path) if resume else None
        if tuner is None:
            space = {key: domains[d.kind](d) for key, d in search.space.items()}
            searcher = OptunaSearch(seed=search.seed)  # metric and mode come from TuneConfig
            if plan.spec.max_concurrent:
                searcher = ConcurrencyLimiter(searcher, max_concurrent=plan.spec.max_concurrent)
            scheduler = None
            if search.scheduler:
                asha = search.scheduler.asha
                scheduler = ASHAScheduler(
                    time_attr="training_iteration",
                    grace_period=asha.grace_period,
                    reduction_factor=asha.reduction_factor,
                    max_t=10_000,
                )
            tuner = tune.Tuner(
                _trainable(),
                param_space={"trial": payload, **space},
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=search.trials,
                    metric=search.metric,
                    mode=search.mode,
                    trial_name_creator=lambda t: f"{t.config['trial']['name']},{t.trial_id}",
                    trial_dirname_creator=lambda t: t.trial_id,
                    reuse_actors=True,
                ),
                run_config=_run_config(plan, sweep_dir, name, callback),
            )
        found, interrupted = _fit(tuner)
        results.extend(found)
        if interrupted:
            return results, True
    return results, False


def run_sweep(
    plan: Plan,
    *,
    storage: Path,
    tracking_uri: str,
    address: str | None = None,
    resume: bool = False,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Summary:
    """Run the trials of ``plan`` that are not done yet; returns what each trial ended as."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    import ray

    from experiments.sweep_progress import SweepProgress

    uri = absolute_uri(tracking_uri)
    phases = Phases()
    sweep_dir = storage.resolve() / plan.spec.name  # this spec's Tune state, and nothing else
    state_path = sweep_dir / STATE_FILE
    _check_data(plan)
    check_store_writable(uri)
    check_writable(sweep_dir, "Tune's state and trial checkpoints")
    previous = json.loads(state_path.read_text()) if state_path.is_file() else None
    if resume and previous is None:
        raise UserError(
            f"there is no interrupted sweep of {plan.spec.name} under {storage} to resume; "
            "run it without --resume."
        )
    if resume and previous["spec_hash"] != plan.hash:
        raise UserError(
            f"the interrupted sweep under {storage} ran a different version of {plan.path}; "
            "run it without --resume."
        )
    trials = plan.trials
    if plan.spec.search:
        trials = [t for t in plan.trials if t.seed == plan.spec.seeds[0]]
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:  # checked before anything is created; a cluster is checked once joined
        _refuse_resources(plan, os.cpu_count() or 1, torch.cuda.device_count(), "this machine")
    if not force and not plan.spec.search and not resume:
        finished = runs.done(uri, plan)
        if all(t.hash in finished for t in trials):
            echo(f"nothing to run: all {len(trials)} trials of {plan.spec.name} have finished runs")
            return Summary(None, skipped=[t.name for t in trials], seconds=phases.end("checks"))
    forwarded = ("MULTI30K_DIR", "XDG_CACHE_HOME", "ABLAB_MULTI30K_URL", PATIENCE_ENV)
    env = {k: v for k in forwarded if (v := os.environ.get(k))}
    env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # Trial workers run trial after trial; with glibc's defaults their freed memory stays
    # fragmented (a worker grew to 10 GB over five trials). Two arenas and a heap trim after each
    # trial (experiments/trial.py) keep it at 2-3 GB. Not a trim threshold: setting one turns off
    # glibc's adaptive mmap threshold, every tensor above 128 kB is then mapped and unmapped at
    # each step, and training ran at half speed (the smoke baseline: 127 s against 66-73 s).
    env["MALLOC_ARENA_MAX"] = os.environ.get("MALLOC_ARENA_MAX", "2")
    # Tune saves its experiment state at most every 10 s by default; a restore after the driver
    # died only knows that state. Save more often (trials also check MLflow before running).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    phases.end("checks")
    _start_ray(plan, address, uri, env)
    phases.end("ray_start")
    try:
        with _store_answers(uri, "nothing was started; start it (or fix --tracking-uri) and run again."):
            sweep = runs.prepare(
                uri, plan, force=force, parent_run_id=previous["parent_run_id"] if resume else None
            )
        phases.end("mlflow_prepare")
        todo = [t for t in trials if t.hash in sweep.run_ids] if not plan.spec.search else trials
        summary = Summary(sweep.parent_run_id, skipped=[t.name for t in sweep.skipped])
        if not resume and sweep_dir.exists():
            shutil.rmtree(sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"spec_hash": plan.hash, "parent_run_id": sweep.parent_run_id}))
        if todo:
            echo(
                f"{plan.spec.name}: {len(todo)} trials to run, {len(sweep.skipped)} already done; "
                f"MLflow experiment {plan.experiment}, parent run {sweep.parent_run_id}"
            )
            payloads = [_payload(plan, t, uri, sweep, sweep_dir) for t in todo]
            progress = SweepProgress(
                len(todo) * (plan.spec.search.trials if plan.spec.search else 1),
                plan.spec.metric,
                plan.spec.mode,
                echo,
            )
            tune_fn = _tune_search if plan.spec.search else _tune_grid
            for restart in range(OOM_RESTARTS + 1):
                try:
                    results, summary.interrupted = tune_fn(plan, payloads, sweep_dir, resume, progress)
                    break
                except WorkerOutOfMemory as exc:
                    if restart == OOM_RESTARTS:
                        raise Unavailable(
                            f"Ray's memory monitor killed trial workers {restart + 1} times ({exc}): the "
                            "trials need more memory than the nodes have. Lower max_concurrent in "
                            f"{plan.path} (or raise resources.cpus, so that fewer trials share a node), "
                            f"then continue with: ablab run {plan.path} --resume"
                        ) from None
                    echo(
                        f"Ray's memory monitor killed a trial worker ({exc}); the sweep continues from its "
                        f"saved state, the trial from its last checkpoint ({restart + 1}/{OOM_RESTARTS})"
                    )
                    ray.shutdown()  # every worker of the stopped controller goes with it
                    _start_ray(plan, address, uri, env)
                    resume = True
            phases.end("tune")
        then = (
            f"the trials' results are kept under {sweep_dir}; once it answers, "
            f"ablab run {plan.path} --resume records them."
        )
        with _store_answers(uri, then):
            if todo:
                made = [sweep.run_ids[t.hash] for t in todo if t.hash in sweep.run_ids]
                settled = _settle_runs(uri, results, summary.interrupted, made)
                summary.trials = runs.outcome(uri, settled)
            if summary.interrupted:  # keep Tune's state and the parent run open to --resume
                runs.end_parent(uri, sweep.parent_run_id, "KILLED", summary.trials)
            else:
                status = "FAILED" if summary.failed else "FINISHED"
                runs.end_parent(uri, sweep.parent_run_id, status, summary.trials)
                state_path.unlink(missing_ok=True)
        phases.end("mlflow_settle")
    finally:
        ray.shutdown()
    summary.seconds = phases.end("ray_shutdown")
    return summary


@contextlib.contextmanager
def _store_answers(uri: str, then: str):
    """Turn "the tracking store does not answer" into a clear error that says ``then``."""
    try:
        yield
    except Exception as exc:
        if not unreachable(exc):
            raise
        raise Unavailable(
            f"the MLflow tracking store {uri} does not answer ({first_line(exc)}); {then}"
        ) from None


class Phases:
    """Wall time of consecutive phases: each :meth:`end` closes the phase begun by the last."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def end(self, name: str) -> dict[str, float]:
        now = time.monotonic()
        self.seconds[name] = now - self._last
        self._last = now
        return self.seconds


def _settle_runs(uri: str, results, interrupted: bool = False, expected: list[str] = ()) -> list[str]:
    """Give each run the outcome its process could not record itself; returns the run ids.

    A process killed for good leaves its run RUNNING: it failed. A trial that ended without
    error and without its final report was killed by the sweep's stop (Ctrl-C; ``--resume``
    continues it) if the sweep was interrupted, else stopped early by the scheduler (ASHA).
    A run in ``expected`` (the driver made it) that no result names belongs to a trial whose
    worker died before Tune could record anything (e.g. killed for memory while starting): it
    failed, unless the sweep was interrupted.
    """
    from mlflow import MlflowClient

    found: dict[str, Any] = {}
    for result in results:
        metrics = result.metrics or {}
        run_id = metrics.get("mlflow_run_id") or ((result.config or {}).get("trial") or {}).get("run_id")
        if run_id:
            found[run_id] = result
    for run_id in expected:
        found.setdefault(run_id, None)
    client, deadline = MlflowClient(uri), time.monotonic() + record.SETTLE_SECONDS
    for run_id, result in found.items():
        run = record.settled(client, run_id, deadline)
        if record.is_done(run) or run.info.status == "FAILED":
            continue
        if result is None and interrupted:
            error = None
        elif result is None:
            error = "the trial's worker died before it reported a result (see Tune's log of the sweep)"
        else:
            error = result.error
        if error is not None:
            record.mark(client, run_id, record.FAILED, error)
        elif run.info.status != "SCHEDULED" and not (result and (result.metrics or {}).get(COMPLETE)):
            # started (a SCHEDULED run never did) and stopped before its final report
            record.mark(client, run_id, record.KILLED if interrupted else record.EARLY_STOPPED)
    return list(found)
