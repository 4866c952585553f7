"""Share of a sweep's wall time that is orchestration rather than training.

Runs a real sweep (local Ray, a fresh sqlite MLflow store) of ``--trials`` copies of the seed
baseline Transformer, one per seed, each with a budget of ``--minutes`` of training, at most
``--concurrent`` at once with the machine's cores divided among them. Then

    work_i         = wall_seconds_i + eval_seconds_i - mlflow_io_seconds_i
    capacity       = sweep wall time x slots        (slots = trials that can run at once)
    orchestration  = capacity - sum_i (work_i + setup_seconds_i)

``wall_seconds`` is the trainer's own clock of training and validation, ``eval_seconds`` that
of the final test evaluation, and ``mlflow_io_seconds`` the time the trial spent in calls to
the tracking store, which is counted as orchestration even where it happened inside those
clocks. The trainer's ``setup_seconds`` (reading and encoding the data, building the model)
is neither: ``ablab train`` pays it too; it is printed apart. Everything else is
orchestration: Ray start and shutdown, the MLflow experiment and runs the driver makes,
scheduling, worker processes and their imports, Tune's checkpoint and result handling, and
slots left idle. The BPE cache and the MLflow store (its database tables) are made before the
clock starts, as they are for every sweep but a project's first; the store's one-time cost is
printed apart.

    python benchmarks/sweep_overhead.py                        # 8 one-minute trials, 2 at once
    python benchmarks/sweep_overhead.py --minutes 0.25         # short trials: the fixed costs show
    python benchmarks/sweep_overhead.py --unwatched            # without live delivery, system metrics, status
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml
from mlflow import MlflowClient

from ablab.experiments.spec.expand import load_plan
from ablab.experiments.sweep.driver import run_sweep
from ablab.trainer.build import build_corpus
from ablab.trainer.tracking import record

ROOT = Path(__file__).resolve().parent.parent


def write_spec(folder: Path, trials: int, minutes: float, concurrent: int) -> Path:
    spec = {
        "name": "sweep_overhead",
        "baseline": {
            "config": str(ROOT / "experiments/configs/baseline.yaml"),
            "overrides": {
                "eval.test_sets": ["test_2016_flickr"],
                "eval.val_sentences": 200,
                "eval.test_sentences": 200,
                "eval.beam_size": 1,
            },
        },
        "seeds": list(range(1, trials + 1)),
        "budget": {"minutes": minutes, "epochs": 40},  # the schedule decays over 40 epochs
        "resources": {"cpus": max(1, (os.cpu_count() or 1) // concurrent)},
        "max_concurrent": concurrent,
    }
    path = folder / "sweep_overhead.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per trial")
    parser.add_argument("--concurrent", type=int, default=2, help="trials at once")
    parser.add_argument(
        "--unwatched",
        action="store_true",
        help="no live delivery, system metrics or status (what watching a sweep costs, by difference)",
    )
    args = parser.parse_args()
    if args.unwatched:
        os.environ["ABLAB_LIVE_SECONDS"] = os.environ["ABLAB_SYSTEM_SECONDS"] = "0"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan = load_plan(write_spec(folder, args.trials, args.minutes, args.concurrent))
        config = plan.trials[0].config
        build_corpus(config.data, config.eval)  # warm the BPE cache
        uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
        started = time.monotonic()
        MlflowClient(uri).search_experiments()  # creates the store's tables
        store_seconds = time.monotonic() - started
        summary = run_sweep(
            plan,
            storage=folder / "sweeps",
            tracking_uri=uri,
            echo=lambda line: None,
            status_every=None if args.unwatched else 30.0,
        )
        client = MlflowClient(uri)
        runs = {name: client.get_run(t["run_id"]) for name, t in summary.trials.items()}
        metrics = {  # the trainer's own keys (``wall_seconds``, ...) from the run's MLflow names
            name: record.summary(run.data.metrics, run.data.tags.get(record.TEST_SET))
            for name, run in runs.items()
        }

    statuses = {t["status"] for t in summary.trials.values()}
    if statuses != {"finished"}:
        raise SystemExit(f"the sweep did not finish cleanly: {summary.trials}")
    slots = min(args.concurrent, args.trials)
    wall = sum(summary.seconds.values())
    capacity = wall * slots
    total = {
        k: sum(m[k] for m in metrics.values()) for k in ("wall_seconds", "eval_seconds", "setup_seconds")
    }
    io = sum(m["mlflow_io_seconds"] for m in metrics.values())
    work = total["wall_seconds"] + total["eval_seconds"] - io
    in_tune = summary.seconds["tune"] * slots - sum(total.values())

    print(
        f"sweep: {args.trials} trials x {args.minutes:g} min budget, {slots} at once, {os.cpu_count()} cores"
    )
    for name, m in metrics.items():
        print(
            f"  {name:<16} setup {m['setup_seconds']:4.1f} s  train+val {m['wall_seconds']:5.1f} s  "
            f"test eval {m['eval_seconds']:4.1f} s  MLflow I/O {m['mlflow_io_seconds']:4.2f} s"
        )
    print(f"sweep wall time x {slots} slots      {capacity:8.1f} slot-s   ({wall:.1f} s)")
    print(f"training, validation, test     {work:8.1f} slot-s")
    print(f"trainer setup (data, model)    {total['setup_seconds']:8.1f} slot-s")
    print("orchestration:")
    for phase, seconds in summary.seconds.items():
        if phase != "tune":
            print(f"  driver {phase:<22}{seconds * slots:8.1f} slot-s")
    print(f"  trials outside the trainer   {in_tune:8.1f} slot-s   (worker start, scheduling, reports, idle)")
    print(f"  MLflow I/O in trials         {io:8.1f} slot-s")
    orchestration = capacity - work - total["setup_seconds"]
    share = orchestration / capacity
    if args.minutes < 1:
        verdict = "the goal is for trials of 1 min or more"
    else:
        verdict = "goal < 5 %: " + ("met" if share < 0.05 else "missed")
    print(f"orchestration share            {100 * share:8.2f} %   ({verdict})")
    print(f"not training (setup included)  {100 * (1 - work / capacity):8.2f} %")
    print(f"one-time MLflow store creation {store_seconds:8.1f} s    (a project's first sweep only)")


if __name__ == "__main__":
    main()
