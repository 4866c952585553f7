"""A sweep's runs written as files and read back: the same tables, the same report."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import export, report
from tests.analysis.test_report import smoothing_sweep


def verdict_rows(made: report.Report) -> list[list[dict]]:
    return [section.comparisons for section in made.sections]


def test_an_export_reads_back_as_the_runs_it_was_written_from(tmp_path):
    runs = smoothing_sweep()
    runs.curves = pd.DataFrame(
        [
            {
                "run_id": "baseline-1",
                "setting": "baseline",
                "seed": 1,
                "metric": "train/loss",
                "step": s,
                "epoch": s / 10,
                "value": 5.0 - s / 10,
                "time": 1.7e9 + s,
            }
            for s in range(1, 21)
        ]
    )
    runs.attention = {"baseline-1": {"source": ["a", "b"], "target": ["x"], "weights": [[[0.4, 0.6]]]}}
    runs.samples = {"baseline-1": [{"source": "a b", "reference": "x", "hypothesis": "x y"}]}
    back = export.read(export.write(runs, tmp_path / "runs"))
    assert back.experiment == runs.experiment and back.parent_run_id is None
    pd.testing.assert_frame_equal(back.trials[runs.trials.columns], runs.trials, check_dtype=False)
    pd.testing.assert_frame_equal(back.curves, runs.curves, check_dtype=False)
    pd.testing.assert_frame_equal(back.bins, runs.bins, check_dtype=False)
    assert back.statistics.keys() == runs.statistics.keys()
    for run, arrays in runs.statistics.items():
        for name, array in arrays.items():
            assert np.array_equal(back.statistics[run][name], array)
    assert back.test_sets == runs.test_sets and back.attention == runs.attention
    assert back.samples == runs.samples
    assert isinstance(back.trials["groups"][0], tuple)
    with gzip.open(tmp_path / "runs" / export.RUNS, "rt") as f:
        assert json.load(f)["format"] == export.FORMAT


def test_a_report_rebuilt_from_the_export_has_the_same_verdicts(tmp_path):
    runs = smoothing_sweep()
    first = report.build(runs, tmp_path / "a", n_resamples=500, links=False)
    again = report.build(
        export.read(export.write(runs, tmp_path / "runs")), tmp_path / "b", n_resamples=500, links=False
    )
    assert verdict_rows(again) == verdict_rows(first)
    assert [s.rows for s in again.sections] == [s.rows for s in first.sections]
    assert any(line.startswith("Made by ablab ") and "commit" in line for line in first.intro)


def test_a_folder_that_is_not_an_export_is_named_with_what_it_lacks(tmp_path):
    with gzip.open(tmp_path / export.RUNS, "wt") as f:
        f.write("{}")
    with pytest.raises(FileNotFoundError, match="curves.csv.gz"):
        export.read(tmp_path)
