"""What watching a run costs, and how soon its curves show: the same training with the live
delivery and the system metrics on (as ablab runs by default: every 30 s and 10 s) and off
(metrics delivered at checkpoints only, no sampling), in alternating rounds so that load on the
machine affects both alike; and the delay from a logged step to its appearance in the store, as
a reader in another process, polling the store every 0.5 s, sees it.

Each round trains ``experiments/configs/demo.yaml`` (a small model: its updates are short, so
the cost shows most) for ``--steps`` updates, logging every 2, into a fresh sqlite store. The
throughput is target tokens per second of the training loop's wall time (updates, logging and
validation: the trainer's ``wall_seconds``) and of its updates alone (``train_seconds``). On a
busy machine those vary from round to round by more than the cost; the CPU time the delivery and
sampling threads spend (``time.thread_time``) does not, and bounds what they can take from training.

    python benchmarks/live_tracking.py                         # about 5 minutes on 2 cores
    python benchmarks/live_tracking.py --live 1 --system 1     # thirty times as often: a bound
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mlflow import MlflowClient

from ablab.trainer.config.files import load
from ablab.trainer.hardware.usage import USAGE_ENV, UsageSampler
from ablab.trainer.run import train
from ablab.trainer.tracking.mlflow_tracker import MlflowTracker

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "demo.yaml"


def read_delays(uri: str, stop, out) -> None:
    """In a process of its own (so the trainer's process only trains): poll the store's one run
    every 0.5 s and put on ``out``, for each step of ``train/loss`` when it first appeared, the
    seconds since it was logged."""
    from mlflow import MlflowClient

    client, seen, delays, run_id = MlflowClient(uri), set(), [], None
    stopped = False
    while not stopped:  # a last look after the stop: the steps the run's end delivered
        stopped = stop.wait(0.5)
        try:
            if run_id is None:
                found = client.search_runs([client.get_experiment_by_name("live").experiment_id])
                run_id = found[0].info.run_id if found else None
                continue
            now = time.time()
            for m in client.get_metric_history(run_id, "train/loss"):
                if m.step not in seen:
                    seen.add(m.step)
                    delays.append(now - m.timestamp / 1000)
        except Exception:  # noqa: BLE001 - the store not made yet, or busy: look again
            continue
    out.put(delays)


SPENT = {"delivery": 0.0, "sampling": 0.0}
"""CPU seconds the threads beside the training loop spent: the courier's deliveries, the samples."""


def beside_training(name: str, method):
    """``method``, its CPU time added to :data:`SPENT` when a thread other than the main one (the
    training loop's) runs it."""

    @functools.wraps(method)
    def timed(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            return method(*args, **kwargs)
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            SPENT[name] += time.thread_time() - started

    return timed


MlflowTracker.flush_logged = beside_training("delivery", MlflowTracker.flush_logged)
UsageSampler.sample = beside_training("sampling", UsageSampler.sample)


def one_round(
    steps: int, live: float, system: float, folder: Path
) -> tuple[float, float, list[float], float]:
    """Train once; returns tokens per second of the loop's wall time and of the updates, the
    delays the reader saw, and the loop's wall seconds."""
    config = load(CONFIG, {"train.max_steps": steps, "train.log_every": 2, "eval.test_sentences": 50})
    uri = f"sqlite:///{folder}/mlflow.db"
    os.environ[USAGE_ENV] = str(system)
    tracker = MlflowTracker(uri, "live", live_every=live)
    MlflowClient(uri).search_experiments()  # the store's tables, made before the reader looks
    spawn = multiprocessing.get_context("spawn")
    stop, out = spawn.Event(), spawn.Queue()
    reader = spawn.Process(target=read_delays, args=(uri, stop, out))
    reader.start()  # in both modes alike: what it costs the machine, it costs both
    result = train(config, workdir=folder / "work", tracker=tracker)
    stop.set()
    delays = out.get(timeout=120)
    reader.join()
    m = result.metrics
    tokens = m["tgt_tokens_per_s"] * m["train_seconds"]
    return tokens / m["wall_seconds"], m["tgt_tokens_per_s"], delays, m["wall_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each, alternating")
    parser.add_argument("--live", type=float, default=30.0, help="seconds between deliveries (on)")
    parser.add_argument("--system", type=float, default=10.0, help="seconds between samples (on)")
    args = parser.parse_args()
    modes = {"off": (0.0, 0.0), "on": (args.live, args.system)}
    loop: dict[str, list[float]] = {name: [] for name in modes}
    updates: dict[str, list[float]] = {name: [] for name in modes}
    delays: list[float] = []
    trained = 0.0  # wall seconds of the training loops with live delivery on
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name, (live, system) in modes.items():
                wall, update, seen, wall_seconds = one_round(
                    args.steps, live, system, Path(tmp) / f"{name}{i}"
                )
                loop[name].append(wall)
                updates[name].append(update)
                if name == "on":
                    delays.extend(seen)
                    trained += wall_seconds
                print(
                    f"  round {i + 1} {name:>3}: {wall:,.0f} tok/s of the loop, {update:,.0f} of the updates"
                )
    print(f"\n{args.steps} updates of {CONFIG.name} a round, {args.rounds} rounds each")
    print(f"on: delivery every {args.live:g} s, system metrics every {args.system:g} s; off: neither")
    for what, table in (("the training loop", loop), ("the updates alone", updates)):
        off, on = statistics.median(table["off"]), statistics.median(table["on"])
        print(f"  {what:<18} off {off:>8,.0f} tok/s   on {on:>8,.0f} tok/s   cost {1 - on / off:+.2%}")
    beside = SPENT["delivery"] + SPENT["sampling"]
    print(
        f"  beside the loop: {SPENT['delivery']:.3f} CPU s delivering, "
        f"{SPENT['sampling']:.3f} CPU s sampling, "
        f"{beside / trained:.2%} of the {trained:.0f} s the loops trained (a bound on what they take from it)"
    )
    if delays:
        delays.sort()
        print(
            f"  a logged step reached the store after {statistics.median(delays):.1f} s (median), "
            f"{delays[int(0.95 * (len(delays) - 1))]:.1f} s (95th percentile), {delays[-1]:.1f} s at most "
            f"({len(delays)} steps)"
        )


if __name__ == "__main__":
    main()
