"""A spec's report covers the seeds the spec lists: runs of other seeds in its experiment (seeds a
sequential design added, chosen by what the earlier ones showed, or an earlier version's) are left
out, and the report says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablab.analysis import export
from ablab.analysis.load import of_seeds
from ablab.experiments.reporting import EXPORT, make_report
from ablab.trainer.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "results" / "norm_warmup" / EXPORT  # seeds 1, 2 and 3 of a 2 x 2 design


def test_runs_restricted_to_seeds_keep_every_table_of_those_runs_alone():
    runs = export.read(RUNS)
    kept, left_out = of_seeds(runs, [1, 3])
    assert left_out == [2] and set(kept.trials["seed"]) == {1, 3} and len(kept.trials) == 8
    ids = set(kept.trials["run_id"])
    assert set(kept.curves["run_id"]) == ids and set(kept.bins["run_id"]) <= ids
    for by_run in (kept.statistics, kept.test_sets, kept.attention, kept.samples):
        assert set(by_run) <= ids
    assert set(kept.statistics) == ids & set(runs.statistics)
    every, none = of_seeds(runs, [1, 2, 3])
    assert every is runs and none == []


def test_a_spec_listing_fewer_seeds_than_its_experiment_holds_reports_those_and_says_so(tmp_path):
    spec = yaml.safe_load((ROOT / "experiments" / "specs" / "norm_warmup.yaml").read_text())
    spec.update(name="norm_warmup", seeds=[1, 2])
    path = tmp_path / "two_seeds.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    made = make_report(str(path), "", tmp_path / "report", n_resamples=200, source=RUNS, write_export=True)
    markdown = made.markdown.read_text()
    assert "Seeds: 1, 2." in markdown
    assert "Runs of seed 3 in `ablab/norm_warmup` are left out: the spec does not list them" in markdown
    assert set(export.read(tmp_path / "report" / EXPORT).trials["seed"]) == {1, 2}  # what it read


def test_an_experiment_whose_runs_a_sequential_design_added_is_reported_with_a_warning(tmp_path):
    """Reported by its experiment's name (no spec to say which seeds it planned), the runs of a
    sequential design's later looks are read as planned, and the report says what that costs."""
    runs = export.read(RUNS)
    runs.trials["look"] = [2 if seed == 3 else 1 for seed in runs.trials["seed"]]  # seed 3 added later
    export.write(runs, tmp_path / "runs")
    made = make_report(
        "ablab/norm_warmup", "", tmp_path / "report", n_resamples=200, source=tmp_path / "runs"
    )
    markdown = made.markdown.read_text()
    assert "4 runs were added by a sequential design after its first look" in markdown
    assert "report the experiment with the spec that ran it" in markdown


def test_a_spec_whose_seeds_no_run_has_says_which_seeds_the_experiment_holds(tmp_path):
    spec = yaml.safe_load((ROOT / "experiments" / "specs" / "norm_warmup.yaml").read_text())
    spec.update(name="norm_warmup", seeds=[7, 8])
    path = tmp_path / "other_seeds.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(UserError) as refused:
        make_report(str(path), "", tmp_path / "report", n_resamples=200, source=RUNS)
    message = str(refused.value)
    assert "lists seeds 7, 8" in message and "holds runs of seeds 1, 2, 3 only" in message
    assert "ablab report ablab/norm_warmup" in message
    assert not (tmp_path / "report").exists()  # nothing half-written
