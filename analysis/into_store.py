"""A runs export (:mod:`ablab.analysis.export`) written into an MLflow store as runs again.

Each trial of the export becomes one run of the export's experiment, written as the trainer
would have written it (:mod:`ablab.trainer.tracking.record`): the tags (trial, its hash, groups,
seed, arm, status, headline test set, what it trained in and on), the resolved config as params,
the headline metrics, every curve point at its step with the time it was logged, and the
artifacts the report reads (per-sentence statistics, reliability bins, attention maps, sample
translations). :func:`ablab.analysis.load.load` reads the store back as the export
(:func:`ablab.analysis.export.read`) reads: the same tables, statistics and artifacts. No
checkpoint travels in an export, so a run is browsable and reportable, not resumable.

Each imported run carries its original run id (tag :data:`IMPORTED_FROM`), so importing the same
export twice adds nothing; a trial whose hash a done run of the experiment already holds is not
imported again either. ``ablab run`` skips a trial whose hash an imported done run holds, as it
skips any done trial: a sweep continued on another machine runs only what the export lacks.

Unfinished runs (running or killed) are not imported: without their checkpoints nothing could go
on from them, and a run left "running" would look live forever. A searched spec's export is
refused: of its search runs the export keeps the scores, not the runs.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ablab.analysis.load import HEADLINE, OPTIONS, SweepRuns
from ablab.trainer.tracking import record
from ablab.trainer.tracking.mlflow_tracker import json_safe
from ablab.trainer.tracking.store import ensure_experiment

IMPORTED_FROM = "ablab.imported_from"
"""Tag: the run id the imported run had in the store its export was written from."""
BATCH = 1000  # metrics per log_batch call: MLflow's limit
IDS = ("run_id", "setting", "seed")  # the columns of curves and bins that name the run


class NotImportable(ValueError):
    """The export holds what cannot be written back as runs."""


@dataclass(frozen=True)
class Imported:
    experiment_id: str
    added: list[str]  # the new runs' ids
    present: list[str]  # trials already in the store (imported before, or the same trial done)
    unfinished: list[str]  # trials left out: running or killed when exported


def import_runs(runs: SweepRuns, tracking_uri: str) -> Imported:
    """Write every finished, diverged, early-stopped or failed trial of ``runs`` into the store."""
    if not runs.searched.empty:
        raise NotImportable(
            "a searched spec's export cannot be imported: it keeps the search runs' scores, not the "
            "runs; rebuild its report with `ablab report --from` instead"
        )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, runs.experiment)
    there = record.search(client, experiment_id, record.TRIAL_KIND)
    imported = {r.data.tags.get(IMPORTED_FROM) for r in there}
    done_hashes = {
        r.data.tags[record.TRIAL_HASH]
        for r in there
        if record.is_done(r) and record.TRIAL_HASH in r.data.tags
    }
    added, present, unfinished = [], [], []
    for row in runs.trials.to_dict("records"):
        if row["status"] not in (*record.DONE, record.FAILED):
            unfinished.append(row["trial"])
        elif row["run_id"] in imported or (_known(row.get("trial_hash")) or "") in done_hashes:
            present.append(row["trial"])
        else:
            added.append(_write_run(client, experiment_id, runs, row))
    return Imported(experiment_id, added, present, unfinished)


def _write_run(client, experiment_id: str, runs: SweepRuns, row: dict) -> str:
    """One trial's run; deleted again if writing it fails. Its status and origin are tagged last,
    so a run an import left half-written (killed meanwhile) is neither done for ``ablab run`` and
    the report nor present for the next import, which writes it anew."""
    from mlflow.entities import RunTag

    original = row["run_id"]
    test_set = runs.test_sets.get(original)
    start = _known(row.get("start_time"))
    tags = _tags(row, test_set)
    last = {k: tags.pop(k) for k in (record.STATUS, IMPORTED_FROM)}
    run = client.create_run(
        experiment_id,
        start_time=int(start) if start is not None else None,
        tags=tags,
        run_name=row["trial"],
    )
    run_id = run.info.run_id
    wall = _known(row.get("wall_seconds"))
    end = int(start + 1000 * wall) if start is not None and wall is not None else None
    try:
        _log_values(client, run_id, row, test_set, runs.curves, stamp=end or start or 0)
        with tempfile.TemporaryDirectory() as tmp:
            _log_artifacts(client, run_id, runs, original, test_set, Path(tmp))
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in last.items()])
        client.set_terminated(run_id, record.MLFLOW_STATUS[row["status"]], end_time=end)
    except BaseException:
        client.delete_run(run_id)
        raise
    return run_id


def _tags(row: dict, test_set: str | None) -> dict[str, str]:
    tags = {
        record.KIND: record.TRIAL_KIND,
        record.TRIAL: row["trial"],
        record.TRIAL_HASH: _known(row.get("trial_hash")),
        record.GROUPS: ",".join(row["groups"]),
        record.SEED: str(int(row["seed"])),
        record.ARM: _known(row.get("arm")),
        record.STATUS: row["status"],
        record.ERROR: _known(row.get("error")),
        record.TEST_SET: test_set,
        record.BLEU_SIGNATURE: _known(row.get("bleu_signature")),
        record.PRECISION: _known(row.get("precision")),
        record.DEVICE_KIND: _known(row.get("device_kind")),
        record.LOOK: None if _known(row.get("look")) is None else int(row["look"]),
        IMPORTED_FROM: row["run_id"],
    }
    return {k: str(v) for k, v in tags.items() if v is not None}


def _log_values(
    client, run_id: str, row: dict, test_set: str | None, curves: pd.DataFrame, stamp: float
) -> None:
    """Params (the resolved config), the headline metrics (logged at ``stamp``, Unix ms) and the
    curves with their epochs, each point at its step and the time it was first logged."""
    from mlflow.entities import Metric, Param

    params = [Param(k, _param_text(v)) for k, v in row.items() if k in OPTIONS]
    for i in range(0, len(params), 100):  # MLflow's limit of params per batch
        client.log_batch(run_id, params=params[i : i + 100])
    headline = {k: v for k in HEADLINE if (v := _known(row.get(k))) is not None}
    metrics = [Metric(k, float(v), int(stamp), 0) for k, v in record.final_record(headline, test_set).items()]
    own = curves[curves["run_id"] == row["run_id"]] if not curves.empty else curves
    for point in own.itertuples(index=False):
        metrics.append(
            Metric(point.metric, float(point.value), int(round(point.time * 1000)), int(point.step))
        )
    epochs = own.dropna(subset=["epoch"]).drop_duplicates("step") if not own.empty else own
    for point in epochs.itertuples(index=False):
        metrics.append(
            Metric(record.EPOCH, float(point.epoch), int(round(point.time * 1000)), int(point.step))
        )
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])


def _log_artifacts(client, run_id: str, runs: SweepRuns, original: str, test_set: str | None, tmp: Path):
    """The artifacts the report reads, at the paths the trainer writes them to."""
    if original in runs.statistics and test_set:
        (tmp / "statistics").mkdir()
        np.savez_compressed(tmp / "statistics" / f"{test_set}.npz", **runs.statistics[original])
        client.log_artifact(run_id, str(tmp / "statistics" / f"{test_set}.npz"), "statistics")
    if not runs.bins.empty:
        bins = runs.bins[runs.bins["run_id"] == original].drop(columns=list(IDS))
        if len(bins):
            text = json.dumps(json_safe(bins.to_dict("records")), indent=1, allow_nan=False)
            client.log_text(run_id, text, "calibration/reliability_bins.json")  # an empty bin's mean: null
    if original in runs.attention:
        client.log_dict(run_id, runs.attention[original], "attention/attention.json")
    if original in runs.samples:
        kept = runs.samples[original]
        text = record.samples_text(
            [s["source"] for s in kept],
            [s["reference"] for s in kept],
            [s["hypothesis"] for s in kept],
            len(kept),
        )
        client.log_text(run_id, text, record.SAMPLES)


def _param_text(value) -> str:
    """A config value as the trainer logged it. A table column that mixed None with numbers
    comes back as floats with NaN: None is written ``None``, a whole number without ``.0``."""
    value = _known(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return record.param_text(value)


def _known(value):
    """A table cell, None where it is missing (NaN, None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
