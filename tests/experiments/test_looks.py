"""A sequential spec's sweep, look after look, with each look's trials "run" straight into a real
MLflow store (their scores set by the test): which seeds each look adds, that a decided or futile
comparison gets none, that max_runs caps, and that running again launches nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from ablab.analysis.render import LOOKS_TITLE
from ablab.experiments.spec.expand import load_plan
from ablab.experiments.sweep import looks, mlflow_runs
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import ensure_experiment
from tests.experiments.conftest import ablab, sqlite_uri
from tests.experiments.helpers import TINY, trial_runs, write_spec

TEST_SET = "test_2016_flickr"
BLEU = {  # setting -> BLEU of seeds 1, 2, ...: 'far' is far below the baseline, 'near' is unclear
    "baseline": [28.0, 28.3, 27.9, 28.1, 28.2, 28.0],
    "far": [18.0, 18.4, 17.9, 18.2, 18.1, 18.3],
    "near": [27.2, 27.9, 26.9, 27.5, 27.2, 27.4],
}


class FakeSweep:
    """Stands in for a look's sweep: every trial not in the store yet becomes a finished run with
    the test's BLEU for its setting and seed (logged, as a run without per-sentence statistics)."""

    def __init__(self, uri: str):
        self.uri, self.looks = uri, []

    def __call__(self, plan, resume):
        client = MlflowClient(self.uri)
        experiment = ensure_experiment(self.uri, plan.experiment)
        present = {r.data.tags.get(record.TRIAL_HASH) for r in client.search_runs([experiment])}
        new = [t for t in plan.trials if t.hash not in present]
        for trial in new:
            run = client.create_run(experiment, tags=mlflow_runs.trial_tags(plan, trial))
            bleu = BLEU[record.setting_of(trial.name)][trial.seed - 1]
            for key, value in record.final_record({"bleu": bleu}, TEST_SET).items():
                client.log_metric(run.info.run_id, key, value)
            client.set_tag(run.info.run_id, record.TEST_SET, TEST_SET)
            client.set_tag(run.info.run_id, record.STATUS, record.FINISHED)
            client.set_terminated(run.info.run_id, "FINISHED")
        self.looks.append(sorted(t.name for t in new))
        return type("Summary", (), {"interrupted": False, "parent_run_id": None})()


@pytest.fixture
def sequential(tmp_path):
    def make(**extra):
        spec = {
            "name": "seq",
            "baseline": {"config": TINY},
            "ablations": {
                "far": {"arms": {"far": {"model.dropout": 0.0}}},
                "near": {"arms": {"near": {"model.dropout": 0.2}}},
            },
            "seeds": {"initial": 3, "max": 6, "step": 1},
            **extra,
        }
        path = tmp_path / "seq.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return load_plan(path)

    return make


def names(setting: str, seeds) -> list[str]:
    return [f"{setting},seed={s}" for s in seeds]


def test_each_look_adds_seeds_only_to_the_comparison_still_open_and_the_baseline(tmp_path, sequential):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    plan = sequential()
    sweep = FakeSweep(uri)
    looks.run_looks(plan, sweep, uri, False, lambda line: None)
    first, *later = sweep.looks
    assert first == sorted(names("baseline", (1, 2, 3)) + names("far", (1, 2, 3)) + names("near", (1, 2, 3)))
    assert later[0] == sorted(names("baseline", (4,)) + names("near", (4,)))  # 'far' was decided
    trials, paths, waiting = looks.due_trials(plan, uri)
    by_arm = {p.name: p for p in paths}
    assert by_arm["far"].stopped == "decided" and [k.seeds for k in by_arm["far"].looks] == [3]
    assert by_arm["near"].stopped is not None and waiting is None
    tags = {
        r.data.tags[record.TRIAL]: r.data.tags.get(record.LOOK) for r in MlflowClient(uri).search_runs(["1"])
    }
    assert tags["near,seed=4"] == "2" and tags["far,seed=1"] == "1"

    again = FakeSweep(uri)  # a second run of the decided spec launches nothing
    looks.run_looks(plan, again, uri, False, lambda line: None)
    assert all(look == [] for look in again.looks)


def test_max_runs_caps_the_looks(tmp_path, sequential):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    plan = sequential(max_runs=10)
    sweep, said = FakeSweep(uri), []
    looks.run_looks(plan, sweep, uri, False, said.append)
    assert [len(look) for look in sweep.looks] == [9, 1]  # the second look's two seeds, capped at one
    assert sweep.looks[1] == ["baseline,seed=4"] and any("max_runs (10) reached" in line for line in said)


@pytest.mark.integration
def test_a_sequential_spec_runs_look_after_look_through_ray_and_its_report_shows_the_paths(
    tmp_path, shared_ray
):
    """``ablab run`` of a sequential spec for real: each look a sweep on Ray, its runs tagged with
    their look, the looks kept on a parent run; then nothing more to run, and a report that
    shows each comparison's looks and their figure."""
    spec = write_spec(
        tmp_path,
        "seq",
        budget={"epochs": 1},
        ablations={"slow": {"optim.lr": 0.0003}},
        seeds={"initial": 2, "max": 3, "step": 1},
    )
    uri = sqlite_uri(tmp_path)
    out = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "looks: slow " in out.stderr
    runs = {r.data.tags[record.TRIAL]: r for r in trial_runs(uri, "ablab/seq")}
    first = names("baseline", (1, 2)) + names("slow", (1, 2))
    assert {runs[n].data.tags[record.LOOK] for n in first} == {"1"}
    assert all(r.data.tags[record.STATUS] == record.FINISHED for r in runs.values())
    trials, paths, waiting = looks.due_trials(load_plan(spec), uri)
    assert waiting is None and paths[0].stopped is not None  # the procedure has ended
    assert {t.hash for t in trials} == {r.data.tags[record.TRIAL_HASH] for r in runs.values()}
    client = MlflowClient(uri)
    sweeps = client.search_runs([runs[first[0]].info.experiment_id], "tags.`ablab.kind` = 'sweep'")
    kept = [
        json.loads(
            Path(client.download_artifacts(r.info.run_id, looks.LOOKS_ARTIFACT, str(tmp_path))).read_text()
        )
        for r in sweeps
        if any(a.path == looks.LOOKS_ARTIFACT for a in client.list_artifacts(r.info.run_id))
    ]
    assert kept and any(k["comparisons"][0]["stopped"] == paths[0].stopped for k in kept)

    again = ablab("run", spec, cwd=tmp_path, ray=shared_ray)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(trial_runs(uri, "ablab/seq")) == len(runs)  # a decided spec launches nothing

    made = ablab("report", spec, "--tracking-uri", uri, "--out", tmp_path / "report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert LOOKS_TITLE in text and "![looks](figures/looks.png)" in text
    assert (tmp_path / "report" / "figures" / "looks.png").is_file()
