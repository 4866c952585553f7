"""A sweep's runs as files: everything a report reads (:class:`~ablab.analysis.load.SweepRuns`), without
MLflow and without checkpoints, so a committed report can be rebuilt from what is committed
beside it.

A folder of four files:

- ``runs.json.gz``: the experiment's name, the trials table (one record per trial: ids, status,
  tags, final metrics, the resolved config), a searched spec's search runs, each run's headline
  test set and attention maps;
- ``curves.csv.gz``: the training and validation curves, the long table of
  :attr:`SweepRuns.curves`;
- ``bins.csv.gz``: the reliability bins;
- ``statistics.npz``: each finished run's per-sentence sufficient statistics, keyed
  ``<run id>/<metric>`` (compressed; integer counts stored as integers).

:func:`read` gives back the :class:`SweepRuns` that :func:`write` was given (tables equal up to
column dtypes: a JSON number comes back an int where it was integral).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ablab.analysis.load import SweepRuns

RUNS = "runs.json.gz"
CURVES = "curves.csv.gz"
BINS = "bins.csv.gz"
STATISTICS = "statistics.npz"
FORMAT = 1


def write(runs: SweepRuns, folder: Path) -> Path:
    """Write ``runs`` to ``folder`` (created; its four files replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT,
        "experiment": runs.experiment,
        "trials": _records(runs.trials),
        "searched": _records(runs.searched),
        "test_sets": runs.test_sets,
        "attention": runs.attention,
        "samples": runs.samples,
    }
    with open(folder / RUNS, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as packed:
        packed.write(json.dumps(document, indent=1, allow_nan=False).encode())
    same_bytes = {"method": "gzip", "mtime": 0}  # the same runs give the same file: no churn in git
    runs.curves.to_csv(folder / CURVES, index=False, compression=same_bytes)
    runs.bins.to_csv(folder / BINS, index=False, compression=same_bytes)
    arrays = {
        f"{run}/{name}": _compact(a) for run, stats in runs.statistics.items() for name, a in stats.items()
    }
    np.savez_compressed(folder / STATISTICS, **arrays)
    return folder


def read(folder: Path) -> SweepRuns:
    """The :class:`SweepRuns` an export holds (no tracking store, no parent run)."""
    missing = [name for name in (RUNS, CURVES, BINS, STATISTICS) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a runs export: {', '.join(missing)} missing")
    with gzip.open(folder / RUNS, "rt") as f:
        document = json.load(f)
    if document.get("format") != FORMAT:
        raise ValueError(
            f"{folder / RUNS}: export format {document.get('format')}, this ablab reads {FORMAT}"
        )
    trials = pd.DataFrame(document["trials"])
    if "groups" in trials:
        trials["groups"] = trials["groups"].map(tuple)
    statistics: dict[str, dict[str, np.ndarray]] = {}
    with np.load(folder / STATISTICS) as arrays:
        for key in arrays.files:
            run, name = key.split("/", 1)
            statistics.setdefault(run, {})[name] = arrays[key].astype(np.float64)
    return SweepRuns(
        experiment=document["experiment"],
        experiment_id="",
        tracking_uri=str(folder),
        parent_run_id=None,
        trials=trials,
        curves=_table(folder / CURVES),
        bins=_table(folder / BINS),
        statistics=statistics,
        test_sets=document["test_sets"],
        attention=document["attention"],
        samples=document.get("samples", {}),  # exports made before they were kept have none
        searched=pd.DataFrame(document["searched"]),
    )


def _records(table: pd.DataFrame) -> list[dict]:
    """Rows as JSON-able records: NaN as null, numpy scalars as Python numbers."""
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _compact(array: np.ndarray) -> np.ndarray:
    """Integral values as int32 (n-gram counts compress far better), others as they are."""
    if (
        np.all(np.isfinite(array))
        and np.all(array == np.round(array))
        and np.abs(array).max(initial=0) < 2**31
    ):
        return array.astype(np.int32)
    return array


def _table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a sweep without curves or bins
        return pd.DataFrame()
