"""A sweep's MLflow runs as tidy pandas tables: any tracking URI, nothing else.

- ``trials``: one row per trial (the newest run of each trial hash, preferring one that is
  done): ``run_id``, ``trial`` (``heads=8,seed=1``), ``setting`` (the name without its seed),
  ``groups``, ``arm`` (for a named arm), ``seed``, ``status``, ``error``, the headline
  metrics (``bleu``, ``bleu_lc``, ``chrf``, ``ece``, ``test_nll``, ``params``,
  ``train_seconds``, ``wall_seconds``, ``epochs``,
  ``epochs_to_90pct``, ``seconds_to_90pct``, ``tgt_tokens_per_s``, ``diverged_step``) and the
  resolved config as dotted-key columns (``model.heads``, ...).
- ``curves``: long table ``run_id, setting, seed, metric, step, epoch, value``: per-step
  training metrics, and per-epoch validation metrics placed at the update step they were
  measured after.
- ``bins``: the reliability bins, ``run_id, setting, seed, bin, count, confidence, accuracy``.
- ``statistics``: per run id, the per-sentence sufficient statistics of every test metric on
  the headline test set (``statistics/<test set>.npz``, layout in :mod:`trainer.evaluate`;
  calibration flattened to ``(sentences, 3·bins)``), which the comparisons resample.
- ``attention``: per run id, the attention maps of the fixed sentence.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DONE = ("finished", "diverged", "early_stopped")
HEADLINE = (
    "bleu",
    "bleu_lc",
    "chrf",
    "ece",
    "test_nll",
    "params",
    "train_seconds",
    "wall_seconds",
    "epochs",
    "steps",
    "epochs_to_90pct",
    "seconds_to_90pct",
    "tgt_tokens_per_s",
    "best_val_bleu",
    "diverged_step",
)
STEP_CURVES = ("train_loss", "lr", "grad_norm")
EPOCH_CURVES = ("val_loss", "val_bleu")


@dataclass
class SweepRuns:
    experiment: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str | None
    trials: pd.DataFrame
    curves: pd.DataFrame
    bins: pd.DataFrame
    statistics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # run id -> arrays
    test_sets: dict[str, str] = field(default_factory=dict)  # run id -> headline test set
    attention: dict[str, dict] = field(default_factory=dict)  # run id -> attention record

    @property
    def finished(self) -> pd.DataFrame:
        return self.trials[self.trials["status"] == "finished"]


class NoRuns(LookupError):
    """The experiment is missing or holds no trial runs."""


def load(tracking_uri: str, experiment: str) -> SweepRuns:
    """Read every trial of ``experiment`` (and its artifacts) from the store."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise NoRuns(f"there is no MLflow experiment {experiment!r} in {tracking_uri}")
    runs = _newest_per_trial(_search(client, found.experiment_id, "tags.`ablab.kind` = 'trial'"))
    if not runs:
        raise NoRuns(f"experiment {experiment!r} in {tracking_uri} has no trial runs")
    parents = _search(client, found.experiment_id, "tags.`ablab.kind` = 'sweep'")
    parent = max(parents, key=lambda r: r.info.start_time).info.run_id if parents else None
    out = SweepRuns(
        experiment,
        found.experiment_id,
        tracking_uri,
        parent,
        trials=pd.DataFrame([_trial_row(r) for r in runs]),
        curves=pd.DataFrame(),
        bins=pd.DataFrame(),
    )
    curves, bins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            row = _ids(run)
            curves.extend(_curves(client, run, row))
            if run.data.tags.get("ablab.status") != "finished":
                continue
            run_id, test_set = run.info.run_id, run.data.tags.get("ablab.test_set", "")
            if test_set:
                out.test_sets[run_id] = test_set
            statistics = _artifact(client, run_id, f"statistics/{test_set}.npz", tmp)
            if statistics is not None:
                with np.load(statistics) as arrays:
                    out.statistics[run_id] = {k: v.reshape(len(v), -1) for k, v in arrays.items()}
            calibration = _artifact(client, run_id, "calibration/reliability_bins.json", tmp)
            if calibration is not None:
                bins.extend({**row, **b} for b in json.loads(calibration.read_text()))
            attention = _artifact(client, run_id, "attention/attention.json", tmp)
            if attention is not None:
                out.attention[run_id] = json.loads(attention.read_text())
    out.curves = pd.DataFrame(
        curves, columns=["run_id", "setting", "seed", "metric", "step", "epoch", "value"]
    )
    out.bins = pd.DataFrame(bins)
    return out


def _artifact(client, run_id: str, path: str, tmp: str) -> Path | None:
    """One artifact of the run, downloaded (not the whole folder: checkpoints are large); None
    if the run has none (runs logged before ablab wrote it, or a store that lost it)."""
    from mlflow.exceptions import MlflowException

    try:
        return Path(client.download_artifacts(run_id, path, f"{tmp}/{run_id}"))
    except (MlflowException, OSError):
        return None


def _search(client, experiment_id: str, query: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _newest_per_trial(runs: list) -> list:
    """One run per trial hash: the newest done run, else the newest (``--force`` re-runs and
    failed attempts leave several)."""
    best: dict[str, object] = {}
    for run in runs:
        key = run.data.tags.get("ablab.trial_hash", run.info.run_id)
        rank = (run.data.tags.get("ablab.status") in DONE, run.info.start_time or 0)
        current = best.get(key)
        if current is None or rank > (
            current.data.tags.get("ablab.status") in DONE,
            current.info.start_time or 0,
        ):
            best[key] = run
    return sorted(best.values(), key=lambda r: r.data.tags.get("ablab.trial", ""))


def setting_of(trial: str) -> str:
    """``heads=8,seed=1`` -> ``heads=8``: the trial's name without its seed."""
    parts = [p for p in trial.split(",") if not p.startswith("seed=")]
    return ",".join(parts) or trial


def _ids(run) -> dict:
    trial = run.data.tags.get("ablab.trial", run.info.run_name or run.info.run_id)
    return {
        "run_id": run.info.run_id,
        "setting": setting_of(trial),
        "seed": int(run.data.tags.get("ablab.seed", 0)),
    }


def _trial_row(run) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    status = tags.get("ablab.status") or run.info.status.lower()
    row = {
        **_ids(run),
        "trial": tags.get("ablab.trial", run.info.run_name),
        "groups": tuple(g for g in tags.get("ablab.groups", "").split(",") if g),
        "arm": tags.get("ablab.arm"),
        "status": status,
        "error": tags.get("ablab.error"),
        "start_time": run.info.start_time,
    }
    row.update({k: metrics.get(k) for k in HEADLINE})
    if row["params"] is None and "derived.params" in run.data.params:
        row["params"] = float(run.data.params["derived.params"])
    row.update({k: _value(v) for k, v in run.data.params.items() if not k.startswith("derived.")})
    return row


def _value(text: str):
    """An MLflow param (a string) back as the number, bool or None it was logged as."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _curves(client, run, row: dict) -> list[dict]:
    keys = set(run.data.metrics)
    out = []
    for metric in STEP_CURVES:
        if metric in keys:
            out.extend(
                {**row, "metric": metric, "step": m.step, "epoch": None, "value": m.value}
                for m in client.get_metric_history(run.info.run_id, metric)
            )
    at_step = {}
    if "epoch_step" in keys:
        at_step = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_step")}
    for metric in EPOCH_CURVES:
        if metric in keys:
            out.extend(
                {**row, "metric": metric, "step": at_step.get(m.step), "epoch": m.step, "value": m.value}
                for m in client.get_metric_history(run.info.run_id, metric)
            )
    return out
