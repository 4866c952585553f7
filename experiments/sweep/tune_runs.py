"""The Tune side of a sweep: the trials as a grid (or, per point, an Optuna search and its
confirmation seeds), run,
saved, restored after the driver died, and restarted after Ray's memory monitor killed a worker.

Each trial gets a :class:`~ablab.experiments.sweep.trial.TrialPayload` (through Tune, a plain mapping) and
runs :func:`ablab.experiments.sweep.trial.run_trial` with the CPUs and GPUs it asks for. Tune retries a
failing trial from its last checkpoint up to the spec's ``retries``; Ctrl-C saves the state
for ``--resume``.
"""

from __future__ import annotations

import math
import pickletools
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablab.experiments.spec.expand import Plan, Trial
from ablab.experiments.sweep import mlflow_runs
from ablab.experiments.sweep.trial import TrialPayload, dir_name
from ablab.trainer.config.schema import to_dict
from ablab.trainer.errors import Unavailable
from ablab.trainer.tracking import record
from ablab.trainer.tracking.outbox import first_line

WORK_DIR = "work"
"""Under a sweep's folder: each trial's trainer work directory (checkpoints, result), by trial."""
OOM_RESTARTS = 3
"""Times a sweep continues after Ray's memory monitor killed a trial worker."""


def payload(
    plan: Plan,
    trial: Trial,
    uri: str,
    sweep: mlflow_runs.PreparedSweep,
    sweep_dir: Path,
    planned: float | None = None,
) -> dict[str, Any]:
    """What the trial's worker gets; ``planned``: its training rate as planned (FLOP/s)."""
    return TrialPayload(
        name=trial.name,
        hash=trial.hash,
        config=to_dict(trial.config),
        tags=mlflow_runs.trial_tags(plan, trial),
        run_id=sweep.run_ids.get(trial.hash),
        tracking_uri=uri,
        experiment=plan.experiment,
        parent_run_id=sweep.parent_run_id,
        metric=plan.spec.search.metric if plan.spec.search else plan.spec.metric,
        work_root=str(sweep_dir / WORK_DIR),
        cpus=trial.resources.cpus,
        gpus=trial.resources.gpus,
        run_figures=plan.spec.run_figures,
        planned_flops_per_s=planned,
    ).params()


def _trainable():
    from ray import tune

    from ablab.experiments.sweep.trial import run_trial

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


def _grid_tuner(plan, payloads: list[dict], sweep_dir: Path, name: str, resume: bool, callback, fixed=None):
    """A Tuner running ``payloads`` as a grid, each trial once (with the ``fixed`` searched
    values, for a search's confirmation seeds), restored from ``sweep_dir / name`` when resuming."""
    from ray import tune

    tuner = _restored(sweep_dir / name) if resume else None
    if tuner is not None:
        return tuner
    return tune.Tuner(
        _trainable(),
        param_space={"trial": tune.grid_search(payloads), **(fixed or {})},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=plan.spec.max_concurrent,
            trial_name_creator=lambda t: TrialPayload.of(t.config["trial"]).name,
            trial_dirname_creator=lambda t: dir_name(TrialPayload.of(t.config["trial"]).name),
            reuse_actors=True,  # a worker process runs trial after trial: imports paid once
        ),
        run_config=_run_config(plan, sweep_dir, name, callback),
    )


def _tune_grid(plan, payloads, sweep_dir: Path, resume, callback):
    return _fit(_grid_tuner(plan, payloads, sweep_dir, "tune", resume, callback))


PRE_NAMESPACE_MODULES = re.compile(r"(trainer|experiments|analysis)(\.\w+)+")
"""Module names of ablab before its one namespace (``experiments.trial``, now
``ablab.experiments.sweep.trial``): a Tune state pickled under them cannot be restored."""


def pre_namespace_state(sweep_dir: Path) -> list[str]:
    """The old module names that the Tune state saved under ``sweep_dir`` refers to (none for a
    state saved by this ablab). Read from the pickles' opcodes: nothing is imported or run."""
    names = set()
    for saved in sweep_dir.glob("*/tuner.pkl"):
        for _, arg, _ in pickletools.genops(saved.read_bytes()):
            if isinstance(arg, str) and PRE_NAMESPACE_MODULES.fullmatch(arg):
                names.add(arg)
    return sorted(names)


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


def _points(payloads: list[dict]) -> dict[str, list[dict]]:
    """The payloads by point (the trial's name without its seed), seeds in the spec's order."""
    points: dict[str, list[dict]] = {}
    for p in payloads:
        points.setdefault(record.setting_of(TrialPayload.of(p).name), []).append(p)
    return points


def _with_role(payload: dict, role: str, search) -> dict:
    """The payload with the tags that say its part in the search and what the search ranks by."""
    tags = {record.SEARCH_ROLE: role, record.SEARCH_METRIC: f"{search.metric} {search.mode}"}
    return {**payload, "tags": {**payload["tags"], **tags}}


def best_values(results: list, metric: str, mode: str, keys) -> dict[str, Any] | None:
    """The searched ``keys``' values of the best trial of one search by ``metric`` (finite values
    only: a diverged or failed sample reports NaN); None when no sample has one."""
    scored = [
        r for r in results if r.error is None and math.isfinite((r.metrics or {}).get(metric, math.nan))
    ]
    if not scored:
        return None
    best = (max if mode == "max" else min)(scored, key=lambda r: r.metrics[metric])
    return {key: best.config[key] for key in keys}


def _tune_search(plan, payloads, sweep_dir: Path, resume, callback):
    """Per point (arm or grid point): an Optuna search with the first seed, then every other seed
    at the best values it found (the confirmation runs the report compares; the search runs
    only chose the values, so their winner's luck is not in any verdict)."""

    search = plan.spec.search
    results = []
    for point, members in _points(payloads).items():
        name = "tune-" + point.replace(",", "_")
        space = plan.search_space(next(t for t in plan.trials if t.name == TrialPayload.of(members[0]).name))
        searching = _with_role(members[0], "search", search)
        found, interrupted = _fit(_search_tuner(plan, searching, space, sweep_dir, name, resume, callback))
        results.extend(found)
        if interrupted:
            return results, True
        values = best_values(found, search.metric, search.mode, space)
        if len(members) == 1 or values is None:
            continue
        confirming = [_with_role(m, "confirm", search) for m in members[1:]]
        found, interrupted = _fit(
            _grid_tuner(plan, confirming, sweep_dir, f"{name}-seeds", resume, callback, fixed=values)
        )
        results.extend(found)
        if interrupted:
            return results, True
    return results, False


def _search_tuner(plan, payload: dict, space: dict, sweep_dir: Path, name: str, resume: bool, callback):
    """The Optuna search of one point over ``space`` (its group's or the spec's), restored from
    ``sweep_dir / name`` when resuming."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    tuner = _restored(sweep_dir / name) if resume else None
    if tuner is not None:
        return tuner
    search = plan.spec.search
    domains = {
        "loguniform": lambda d: tune.loguniform(*d.loguniform),
        "uniform": lambda d: tune.uniform(*d.uniform),
        "randint": lambda d: tune.randint(*d.randint),
        "choice": lambda d: tune.choice(d.choice),
    }
    sampled = {key: domains[d.kind](d) for key, d in space.items()}
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
    return tune.Tuner(
        _trainable(),
        param_space={"trial": payload, **sampled},
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


def run_tune(
    plan: Plan,
    payloads: list[dict],
    sweep_dir: Path,
    resume: bool,
    callback,
    restart: Callable[[], None],
    echo,
) -> tuple[list, bool]:
    """Run the trials (a grid, or searches); after Ray's memory monitor killed a worker, call
    ``restart`` (a fresh Ray) and continue from the saved state, up to :data:`OOM_RESTARTS`
    times. Returns the results and whether the sweep stopped on Ctrl-C."""
    tune_fn = _tune_search if plan.spec.search else _tune_grid
    killed = 0
    while True:
        try:
            return tune_fn(plan, payloads, sweep_dir, resume, callback)
        except WorkerOutOfMemory as exc:
            killed += 1
            if killed > OOM_RESTARTS:
                raise Unavailable(
                    f"Ray's memory monitor killed trial workers {killed} times ({exc}): the "
                    "trials need more memory than the nodes have. Lower max_concurrent in "
                    f"{plan.path} (or raise resources.cpus, so that fewer trials share a node), "
                    f"then continue with: ablab run {plan.path} --resume"
                ) from None
            echo(
                f"Ray's memory monitor killed a trial worker ({exc}); the sweep continues from its "
                f"saved state, the trial from its last checkpoint ({killed}/{OOM_RESTARTS})"
            )
            restart()
            resume = True
