"""A sweep's MLflow runs as tidy pandas tables: any tracking URI, nothing else.

- ``trials``: one row per trial (the newest run of each trial hash, preferring one that is
  done): ``run_id``, ``trial`` (``heads=8,seed=1``), ``trial_hash``, ``setting`` (the name without its seed),
  ``groups``, ``arm`` (for a named arm), ``seed``, ``status``, ``error``, what it trained in and
  on (``precision``, ``device_kind``: :mod:`ablab.analysis.hardware`), the headline
  metrics (``bleu``, ``bleu_lc``, ``chrf``, ``ece``, ``test_nll``, ``params``,
  ``setup_seconds``, ``train_seconds``, ``wall_seconds``, ``eval_seconds``, ``epochs``,
  ``epochs_to_90pct``, ``seconds_to_90pct``, ``tgt_tokens_per_s``, ``diverged_step``) and the
  resolved config as dotted-key columns (``model.heads``, ...), today's options only.
- ``curves``: long table ``run_id, setting, seed, metric, step, epoch, value, time``: the training
  curves (``train/loss``, ``train/nll``, ``train/lr``, ``train/grad_norm``) and the validation
  curves (``val/loss``, ``val/bleu``), each at its global update step with the epoch beside and
  the time it was logged (Unix seconds).
- ``bins``: the reliability bins, ``run_id, setting, seed, bin, count, confidence, accuracy``.
- ``statistics``: per run id, the per-sentence sufficient statistics of every test metric on
  the headline test set (``statistics/<test set>.npz``, layout in :mod:`ablab.trainer.evaluation.evaluate`;
  calibration flattened to ``(sentences, 3·bins)``), which the comparisons resample.
- ``attention``: per run id, the attention maps of the fixed sentence.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ablab.trainer.config.schema import neutral_defaults, valid_keys
from ablab.trainer.tracking import older_stores, record

HEADLINE = (
    "bleu",
    "bleu_lc",
    "chrf",
    "ece",
    "test_nll",
    "params",
    "setup_seconds",
    "train_seconds",
    "wall_seconds",
    "eval_seconds",
    "epochs",
    "steps",
    "epochs_to_90pct",
    "seconds_to_90pct",
    "tgt_tokens_per_s",
    "best_val_bleu",
    "diverged_step",
)
CURVES = (*record.TRAIN.values(), *record.VALIDATION.values())
SAMPLES = 3
"""Translations of the first test sentences kept per run, for the report's sample translations."""
# The trainer's options today: a param of an option since removed is not read, or a store with runs
# from both sides of the removal would show it as a key that varies between otherwise equal runs.
OPTIONS = frozenset(valid_keys())


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
    samples: dict[str, list[dict]] = field(default_factory=dict)  # run id -> source, reference, hypothesis
    searched: pd.DataFrame = field(default_factory=pd.DataFrame)  # a searched spec's runs, both roles


def of_seeds(runs: SweepRuns, seeds: list[int]) -> tuple[SweepRuns, list[int]]:
    """``runs`` restricted to the trials of ``seeds``, and the seeds left out (sorted): a spec's
    report covers the seeds it lists, not every seed its experiment holds (those a sequential
    design added, chosen by what earlier seeds showed, or those of an earlier version of it)."""
    if runs.trials.empty:
        return runs, []
    keep = runs.trials["seed"].isin(seeds)
    if keep.all():
        return runs, []
    ids = set(runs.trials.loc[keep, "run_id"])

    def rows(table: pd.DataFrame) -> pd.DataFrame:
        return table[table["run_id"].isin(ids)].reset_index(drop=True) if "run_id" in table else table

    def entries(mapping: dict) -> dict:
        return {run_id: value for run_id, value in mapping.items() if run_id in ids}

    kept = replace(
        runs,
        trials=runs.trials[keep].reset_index(drop=True),
        curves=rows(runs.curves),
        bins=rows(runs.bins),
        statistics=entries(runs.statistics),
        test_sets=entries(runs.test_sets),
        attention=entries(runs.attention),
        samples=entries(runs.samples),
        searched=runs.searched[runs.searched["seed"].isin(seeds)]
        if "seed" in runs.searched
        else runs.searched,
    )
    return kept, sorted(set(runs.trials.loc[~keep, "seed"]))


class NoRuns(LookupError):
    """The experiment is missing or holds no trial runs."""


def load(tracking_uri: str, experiment: str, spec_file: str | None = None) -> SweepRuns:
    """Read every trial of ``experiment`` (and its artifacts) from the store; its sweep run (where
    a report is logged) the newest, of those of ``spec_file`` where the experiment holds sweeps of
    other spec files too."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise NoRuns(f"there is no MLflow experiment {experiment!r} in {tracking_uri}")
    every = _newest_per_trial(record.search(client, found.experiment_id, record.TRIAL_KIND))
    runs = _compared(every)
    if not runs:
        raise NoRuns(f"experiment {experiment!r} in {tracking_uri} has no trial runs")
    parents = [
        r
        for r in record.search(client, found.experiment_id, record.SWEEP_KIND)
        if spec_file is None or r.data.tags.get(record.SPEC_FILE, spec_file) == spec_file
    ]
    parent = max(parents, key=lambda r: r.info.start_time).info.run_id if parents else None
    out = read(client, SweepRuns(experiment, found.experiment_id, tracking_uri, parent, *_empty()), runs)
    out.searched = pd.DataFrame([_search_row(r) for r in every if r.data.tags.get(record.SEARCH_ROLE)])
    return out


def load_run(tracking_uri: str, run_id: str) -> SweepRuns:
    """One run (a trial or an ``ablab train`` run) as a sweep of one."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    return read(
        client, SweepRuns(experiment.name, experiment.experiment_id, tracking_uri, None, *_empty()), [run]
    )


def _empty() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()


def read(client, out: SweepRuns, runs: list) -> SweepRuns:
    """Fill ``out`` with the table, curves and artifacts of ``runs``."""
    out.trials = pd.DataFrame([_trial_row(r) for r in runs])
    curves, bins = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            row = _ids(run)
            curves.extend(_curves(client, run, row))
            if record.status(run) != record.FINISHED:
                continue
            run_id, test_set = run.info.run_id, run.data.tags.get(record.TEST_SET, "")
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
            samples = _artifact(client, run_id, record.SAMPLES, tmp)
            if samples is not None:
                out.samples[run_id] = record.read_samples(samples.read_text())[:SAMPLES]
    out.curves = pd.DataFrame(
        curves, columns=["run_id", "setting", "seed", "metric", "step", "epoch", "value", "time"]
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


def _newest_per_trial(runs: list) -> list:
    """One run per trial hash: the newest done run, else the newest (``--force`` re-runs and
    failed attempts leave several)."""
    best: dict[str, object] = {}
    for run in runs:
        key = run.data.tags.get(record.TRIAL_HASH, run.info.run_id)
        current = best.get(key)
        if current is None or _rank(run) > _rank(current):
            best[key] = run
    return sorted(best.values(), key=lambda r: r.data.tags.get(record.TRIAL, ""))


def _compared(runs: list) -> list:
    """Of a searched spec, the runs that stand for their point: the confirmation seeds run at the
    values the search found best, where there are any. The search runs only chose those values;
    the best of them won among several tries, and its luck would bias a comparison."""
    role = record.SEARCH_ROLE
    confirmed = {_point(r) for r in runs if r.data.tags.get(role) == "confirm"}
    return [r for r in runs if not (r.data.tags.get(role) == "search" and _point(r) in confirmed)]


def _point(run) -> str:
    """The setting a run is a point of: its trial name without the seed (and, for a search sample,
    without the Tune trial id that tells the samples apart)."""
    trial, sample = run.data.tags.get(record.TRIAL, ""), run.data.tags.get(record.TUNE_TRIAL_ID)
    if sample and run.data.tags.get(record.SEARCH_ROLE) == "search":
        trial = trial.removesuffix(f",{sample}")
    return record.setting_of(trial)


def _search_row(run) -> dict:
    tags = run.data.tags
    metric, mode = tags.get(record.SEARCH_METRIC, "val_bleu max").split()
    return {
        "setting": _point(run),
        "seed": int(tags.get(record.SEED, 0)),
        "role": tags[record.SEARCH_ROLE],
        "values": {
            k[len(record.SEARCHED) :]: _value(v) for k, v in tags.items() if k.startswith(record.SEARCHED)
        },
        "metric": metric,
        "mode": mode,
        "score": run.data.metrics.get(record.metric_key(metric)),
        "status": record.status(run),
        "run_id": run.info.run_id,
    }


def _rank(run) -> tuple[bool, int]:
    return record.is_done(run), run.info.start_time or 0


def _ids(run) -> dict:
    trial = run.data.tags.get(record.TRIAL, run.info.run_name or run.info.run_id)
    return {
        "run_id": run.info.run_id,
        "setting": record.setting_of(trial),
        "seed": int(run.data.tags.get(record.SEED, 0)),
    }


def _trial_row(run) -> dict:
    tags = run.data.tags
    row = {
        **_ids(run),
        "trial": tags.get(record.TRIAL, run.info.run_name),
        "trial_hash": tags.get(record.TRIAL_HASH),
        "groups": tuple(g for g in tags.get(record.GROUPS, "").split(",") if g),
        "arm": tags.get(record.ARM),
        "status": record.status(run),
        "error": tags.get(record.ERROR),
        "bleu_signature": tags.get(record.BLEU_SIGNATURE),
        "start_time": run.info.start_time,
        "precision": tags.get(record.PRECISION) or _named_precision(run.data.params),
        "device_kind": tags.get(record.DEVICE_KIND),
        "look": int(tags[record.LOOK]) if record.LOOK in tags else None,  # a sequential design's
    }
    final = record.summary(run.data.metrics, tags.get(record.TEST_SET))
    row.update({k: final.get(k) for k in HEADLINE})
    if row["params"] is None and "derived.params" in run.data.params:
        row["params"] = float(run.data.params["derived.params"])
    if run.data.params:  # a run recorded before an option existed trained with its default
        row.update({k: _value(record.param_text(v)) for k, v in neutral_defaults().items()})
    row.update({k: _value(v) for k, v in run.data.params.items() if k in OPTIONS})
    return row


def _named_precision(params: dict[str, str]) -> str | None:
    """A run recorded before ablab tagged the resolved precision: the one its config named, if
    it named one ('auto' resolved to something unrecorded)."""
    named = params.get("train.precision")
    return None if named in (None, "auto") else named


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
    """The run's curves at their update steps, each point with its epoch (an older store's read
    in today's names and steps by :func:`ablab.trainer.tracking.older_stores.curves`)."""
    run_id, keys = run.info.run_id, set(run.data.metrics)

    def history(key: str) -> list:
        return client.get_metric_history(run_id, key) if key in keys else []

    curves = {key: history(key) for key in CURVES if key in keys}
    epoch_at = {m.step: m.value for m in history(record.EPOCH)}
    older, epoch_at = older_stores.curves(history, keys, epoch_at)
    curves |= older
    return [
        {
            **row,
            "metric": name,
            "step": m.step,
            "epoch": epoch_at.get(m.step),
            "value": m.value,
            "time": m.timestamp / 1000,
        }
        for name, points in curves.items()
        for m in points
    ]
