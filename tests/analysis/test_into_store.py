"""A committed runs export written into an MLflow store reads back as the export: the same
trials, curves, bins, per-sentence statistics and artifacts; once, however often it is imported;
its trials done for a sweep that goes on in that store."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import export
from ablab.analysis.into_store import IMPORTED_FROM, NotImportable, import_runs
from ablab.analysis.load import load
from ablab.experiments.spec.expand import load_plan
from ablab.experiments.sweep import mlflow_runs

ROOT = Path(__file__).resolve().parents[2]
RESULTS, SPECS = ROOT / "results", ROOT / "experiments" / "specs"


def by_trial(table: pd.DataFrame, ids: dict[str, str]) -> pd.DataFrame:
    """The table with the store's run ids mapped to the export's, sorted to compare."""
    keys = [k for k in ("run_id", "metric", "step", "bin") if k in table]
    return table.assign(run_id=table["run_id"].map(ids)).sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("name", ["de_en_files", "norm_warmup"])
def test_an_imported_export_loads_back_as_the_export(name, tmp_path):
    source = export.read(RESULTS / name / "runs")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = import_runs(source, uri)
    assert len(done.added) == len(source.trials) and not done.present and not done.unfinished
    back = load(uri, source.experiment)
    exported = source.trials.set_index("trial")["run_id"]
    ids = dict(zip(back.trials["run_id"], exported[back.trials["trial"]], strict=True))  # store -> export
    trials = by_trial(back.trials, ids)[source.trials.columns]
    pd.testing.assert_frame_equal(
        trials, by_trial(source.trials, {i: i for i in ids.values()}), check_dtype=False
    )
    for table in ("curves", "bins"):
        got, want = getattr(back, table), getattr(source, table)
        assert len(want) > 0
        pd.testing.assert_frame_equal(
            by_trial(got, ids)[want.columns], by_trial(want, {i: i for i in ids.values()}), check_dtype=False
        )
    for new, old in ids.items():
        assert back.statistics[new].keys() == source.statistics[old].keys()
        for metric, array in source.statistics[old].items():
            assert np.array_equal(back.statistics[new][metric], array)
        assert back.test_sets[new] == source.test_sets[old]
        assert back.attention.get(new) == source.attention.get(old)
        assert back.samples.get(new) == source.samples.get(old)
    assert source.attention and source.samples


def test_importing_twice_adds_nothing_and_each_run_names_where_it_came_from(tmp_path):
    source = export.read(RESULTS / "de_en_files" / "runs")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = import_runs(source, uri)
    again = import_runs(source, uri)
    assert not again.added and sorted(again.present) == sorted(source.trials["trial"])
    from mlflow import MlflowClient

    runs = MlflowClient(uri).search_runs([first.experiment_id])
    assert sorted(r.data.tags[IMPORTED_FROM] for r in runs) == sorted(source.trials["run_id"])


def test_a_sweep_going_on_in_the_store_skips_the_imported_trials(tmp_path):
    """An export of today carries each trial's hash; ``ablab run`` finds those trials done."""
    plan = load_plan(SPECS / "norm_warmup.yaml")
    source = export.read(RESULTS / "norm_warmup" / "runs")
    hashes = {t.name: t.hash for t in plan.trials}
    source.trials["trial_hash"] = source.trials["trial"].map(hashes)
    first = source.trials["trial"].iloc[0]
    source.trials.loc[0, "status"] = "running"  # exported while it ran: nothing to go on from
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = import_runs(source, uri)
    assert done.unfinished == [first]
    assert mlflow_runs.done(uri, plan) == set(hashes.values()) - {hashes[first]}
    prepared = mlflow_runs.prepare(uri, plan)
    assert list(prepared.run_ids) == [hashes[first]]


def test_a_searched_export_is_refused_before_anything_is_written(tmp_path):
    source = export.read(RESULTS / "de_en_files" / "runs")
    source.searched = pd.DataFrame([{"setting": "baseline", "seed": 1, "role": "search"}])
    with pytest.raises(NotImportable, match="searched spec"):
        import_runs(source, f"sqlite:///{tmp_path}/mlflow.db")
    assert not list(tmp_path.iterdir())


def test_a_sequential_designs_look_survives_the_round_trip(tmp_path):
    """An export of a sequential sweep keeps each run's look; imported, the runs carry it again."""
    source = export.read(RESULTS / "de_en_files" / "runs")
    source.trials["look"] = list(range(1, len(source.trials) + 1))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    import_runs(source, uri)
    back = load(uri, source.experiment).trials.set_index("trial")["look"]
    assert back.to_dict() == source.trials.set_index("trial")["look"].to_dict()
