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
    "also": [27.3, 27.8, 27.0, 27.4, 27.3, 27.5],
}


class FakeSweep:
    """Stands in for a look's sweep: every trial not in the store yet becomes a finished run with
    the test's BLEU for its setting and seed (logged, as a run without per-sentence statistics),
    or a failed run where its name is in ``failing``."""

    def __init__(self, uri: str, failing=()):
        self.uri, self.looks, self.failing = uri, [], set(failing)

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
            failed = trial.name in self.failing
            client.set_tag(run.info.run_id, record.STATUS, record.FAILED if failed else record.FINISHED)
            client.set_terminated(run.info.run_id, "FAILED" if failed else "FINISHED")
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
    due = looks.due_trials(plan, uri)
    by_arm = {p.name: p for p in due.paths}
    assert by_arm["far"].stopped == "decided" and [k.seeds for k in by_arm["far"].looks] == [3]
    assert by_arm["near"].stopped is not None and due.waiting is None
    tags = {
        r.data.tags[record.TRIAL]: r.data.tags.get(record.LOOK) for r in MlflowClient(uri).search_runs(["1"])
    }
    assert tags["near,seed=4"] == "2" and tags["far,seed=1"] == "1"

    again = FakeSweep(uri)  # a second run of the decided spec launches nothing
    looks.run_looks(plan, again, uri, False, lambda line: None)
    assert all(look == [] for look in again.looks)


def test_max_runs_gives_a_look_to_the_arms_whose_seeds_fit_and_launches_none_for_the_others(
    tmp_path, sequential
):
    """Two open arms at the look at 4 seeds need 3 runs (the baseline's seed 4 and each arm's);
    max_runs leaves 2: the baseline's and the first arm's run, the second arm gets none (a run
    for part of a look nobody can have would be spent for nothing), and the report says why."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    three = {
        "far": {"arms": {"far": {"model.dropout": 0.0}}},
        "near": {"arms": {"near": {"model.dropout": 0.2}}},
    }
    three["also"] = {"arms": {"also": {"model.dropout": 0.3}}}
    plan = sequential(ablations=three, max_runs=14)
    sweep, said = FakeSweep(uri), []
    looks.run_looks(plan, sweep, uri, False, said.append)
    assert [len(look) for look in sweep.looks] == [12, 2]
    assert sweep.looks[1] == ["baseline,seed=4", "near,seed=4"]
    assert any("max_runs (14) reached" in line for line in said)
    made = ablab("report", plan.path, "--tracking-uri", uri, "--out", tmp_path / "report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    assert "max_runs reached at 3 seeds" in (tmp_path / "report" / "report.md").read_text()

    small = sequential(max_runs=10, name="small")  # room for one run: not even one arm's look
    sweep, said = FakeSweep(uri), []
    looks.run_looks(small, sweep, uri, False, said.append)
    assert [len(look) for look in sweep.looks] == [9] and any("max_runs (10) reached" in s for s in said)


def test_a_failed_trial_holds_its_look_until_a_run_of_it_ends(tmp_path, sequential):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    plan = sequential()
    sweep, said = FakeSweep(uri, failing={"near,seed=2"}), []
    looks.run_looks(plan, sweep, uri, False, said.append)
    assert len(sweep.looks) == 1  # no look beyond the first while its seed 2 has no result
    assert any("waits for 1 failed trial (near,seed=2)" in line for line in said)
    due = looks.due_trials(plan, uri)
    assert due.waiting == 3 and due.failed == ["near,seed=2"]
    assert {p.name: p.stopped for p in due.paths}["far"] == "decided"  # the other arm had its look


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
    due = looks.due_trials(load_plan(spec), uri)
    assert due.waiting is None and due.paths[0].stopped is not None  # the procedure has ended
    assert {t.hash for t in due.trials} == {r.data.tags[record.TRIAL_HASH] for r in runs.values()}
    client = MlflowClient(uri)
    sweeps = client.search_runs([runs[first[0]].info.experiment_id], "tags.`ablab.kind` = 'sweep'")
    kept = [
        json.loads(
            Path(client.download_artifacts(r.info.run_id, looks.LOOKS_ARTIFACT, str(tmp_path))).read_text()
        )
        for r in sweeps
        if any(a.path == looks.LOOKS_ARTIFACT for a in client.list_artifacts(r.info.run_id))
    ]
    assert kept and any(k["comparisons"][0]["stopped"] == due.paths[0].stopped for k in kept)

    again = ablab("run", spec, "--resume", cwd=tmp_path, ray=shared_ray)  # as after a crash between looks
    assert again.returncode == 0, again.stderr[-3000:]
    assert "no look of this sequential design was interrupted: it goes on from its runs" in again.stderr
    assert len(trial_runs(uri, "ablab/seq")) == len(runs)  # a decided spec launches nothing

    made = ablab("report", spec, "--tracking-uri", uri, "--out", tmp_path / "report", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert LOOKS_TITLE in text and "![looks](figures/looks.png)" in text
    assert (tmp_path / "report" / "figures" / "looks.png").is_file()
