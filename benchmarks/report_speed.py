"""How long ``ablab report`` takes on a full suite: 13 settings x 3 seeds = 39 trials.

Writes a fresh sqlite MLflow store holding what a sweep of the seed suite leaves (the same tags,
params, metric curves and artifacts the trainer and the sweep log; per-sentence statistics of
1,000 test sentences drawn from the noise model of :mod:`ablab.analysis.simulation`), then times
``make_report`` end to end with 10,000 sentence resamples per comparison (5 metrics x 12 arms),
split into reading the store, the statistics, and figures plus rendering.

    python benchmarks/report_speed.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric

from ablab.analysis import simulation
from ablab.analysis.load import load
from ablab.analysis.metrics import METRICS
from ablab.analysis.verdicts import gather, judge
from ablab.experiments.reporting import make_report
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import ensure_experiment

SETTINGS = {  # setting -> (groups, config overrides)
    "baseline": ("baseline", {}),
    "no_warmup": ("no_warmup", {"schedule.warmup_steps": 0}),
    "no_label_smoothing": ("no_label_smoothing", {"loss.label_smoothing": 0.0}),
    "heads=1": ("heads", {"model.heads": 1}),
    "heads=8": ("heads", {"model.heads": 8}),
    **{f"layers={n}": ("depth", {"model.layers": n}) for n in (1, 2, 4, 6)},
    **{name: ("schedules", {"schedule.name": name}) for name in ("noam", "warmup_linear", "constant")},
    "seq2seq": ("seq2seq", {"model.arch": "seq2seq"}),
}
BASE_CONFIG = {
    "schedule.warmup_steps": 200,
    "loss.label_smoothing": 0.1,
    "model.heads": 4,
    "model.layers": 3,
    "schedule.name": "warmup_cosine",
    "model.arch": "transformer",
    "train.seed": 1,
}
SENTENCES = 1000
BINS = 15


def statistics(model: simulation.NoiseModel, shift: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible per-sentence statistics of every metric for one run."""
    bleu = simulation.draw_runs(model, np.array([shift]), rng)[0]
    tokens = bleu[:, 1] + 1
    chars = np.repeat((bleu[:, 1] * 5)[:, None], 6, axis=1) - np.arange(6)
    chrf = np.stack([chars, chars, rng.binomial(chars.astype(int), 0.6)], axis=2).reshape(SENTENCES, 18)
    calibration = np.zeros((SENTENCES, 3, BINS))
    for i, n in enumerate(tokens.astype(int)):
        confidence = rng.beta(5, 2, n)
        b = np.minimum((confidence * BINS).astype(int), BINS - 1)
        np.add.at(calibration[i], (0, b), 1)
        np.add.at(calibration[i], (1, b), confidence)
        np.add.at(calibration[i], (2, b), rng.uniform(size=n) < confidence)
    nll = np.stack([tokens * rng.gamma(4, 0.5, SENTENCES), tokens], axis=1)
    return {"bleu": bleu, "bleu_lc": bleu, "chrf": chrf, "nll": nll, "calibration": calibration}


def write_store(uri: str, rng: np.random.Generator) -> str:
    name = "ablab/speed"
    experiment_id = ensure_experiment(uri, name)
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, tags={"ablab.kind": "sweep", "ablab.spec": "speed"}).info.run_id
    model = simulation.with_seed_sd(simulation.NoiseModel(rng.poisson(11, SENTENCES) + 2), 1.0, rng)
    for i, (setting, (group, overrides)) in enumerate(SETTINGS.items()):
        for seed in (1, 2, 3):
            config = {**BASE_CONFIG, **overrides, "train.seed": seed}
            shift = 0.15 * (config["model.layers"] - 3) if setting.startswith("layers") else 0.1 * (i % 4)
            trial = f"{setting},seed={seed}"
            run = client.create_run(
                experiment_id,
                run_name=trial,
                tags={
                    "ablab.kind": "trial",
                    "ablab.trial": trial,
                    "ablab.trial_hash": f"{i:02d}{seed}",
                    "ablab.seed": str(seed),
                    "ablab.groups": group,
                    "ablab.status": "finished",
                    "ablab.test_set": "test_2016_flickr",
                    "mlflow.parentRunId": parent,
                },
            ).info.run_id
            for key, value in config.items():
                client.log_param(run, key, value)
            now = int(time.time() * 1000)
            stats = statistics(model, shift + rng.normal(0, model.seed_sd), rng)
            scores = {
                m.name: float(m.score(stats[m.statistics].reshape(SENTENCES, -1).sum(0)))
                for m in METRICS.values()
            }
            epoch = {s: s / 250 for s in range(10, 1001, 10)}
            curve = [
                Metric("train/nll", 6 * np.exp(-s / 300) + 2 + rng.normal(0, 0.1), now, s) for s in epoch
            ]
            curve += [Metric("train/lr", 7e-4 * min(1, s / 200), now, s) for s in epoch]
            curve += [Metric("epoch", e, now, s) for s, e in epoch.items()]
            curve += [Metric("val/bleu", 30 * (1 - np.exp(-s / 250)), now, s) for s in (250, 500, 750, 1000)]
            curve += [Metric("val/loss", 3 + np.exp(-s / 250), now, s) for s in (250, 500, 750, 1000)]
            layers = config["model.layers"] if config["model.arch"] == "transformer" else 2.4
            final = {
                **scores,
                "params": 2.05e6 + 1.32e6 * layers,
                "train_seconds": 900.0,
                "epochs": 4.0,
                "steps": 1000,
                "epochs_to_90pct": 3.0,
                "best_val_bleu": 30.0,
            }
            curve += [
                Metric(k, v, now, 1000) for k, v in record.final_record(final, "test_2016_flickr").items()
            ]
            client.log_batch(run, metrics=curve)
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **stats)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "test_2016_flickr.npz").write_bytes(buffer.getvalue())
                client.log_artifact(run, str(Path(tmp) / "test_2016_flickr.npz"), "statistics")
            client.log_text(
                run,
                json.dumps(
                    [
                        {
                            "bin": b,
                            "lower": b / BINS,
                            "upper": (b + 1) / BINS,
                            "count": 10,
                            "confidence": (b + 0.5) / BINS,
                            "accuracy": (b + 0.4) / BINS,
                        }
                        for b in range(BINS)
                    ]
                ),
                "calibration/reliability_bins.json",
            )
            client.set_terminated(run)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlruns/mlflow.db"
        print("writing a store of 39 trials ...", flush=True)
        name = write_store(uri, np.random.default_rng(0))
        started = time.monotonic()
        made = make_report(name, uri, Path(tmp) / "report", n_resamples=args.resamples)
        total = time.monotonic() - started
        started = time.monotonic()
        runs = load(uri, name)
        loaded = time.monotonic() - started
        started = time.monotonic()
        verdicts = judge(gather(runs, runs.trials, args.resamples))
        judged = time.monotonic() - started
    print(f"{len(runs.trials)} trials, {len(verdicts)} comparisons, {args.resamples:,} resamples each")
    print(f"ablab report, end to end: {total:.1f} s (goal: under 30 s on 2 cores), of which")
    print(f"  reading the store {loaded:.1f} s, the comparisons {judged:.1f} s;")
    print("  the rest: figures, rendering, logging the report to the sweep's run")
    print(
        f"  {len(made.report.sections)} sections, {sum(len(s.figures) for s in made.report.sections)} figures"
    )


if __name__ == "__main__":
    main()
