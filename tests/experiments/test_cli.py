"""The ablab command line, run as a user runs it: a subprocess of the installed script."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import script, tiny_dict

ABLAB = script("ablab")


def ablab(*args, cwd, env=None):
    return subprocess.run(
        [ABLAB, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(eval={"test_sentences": 50})))
    return path


@pytest.mark.integration
@pytest.mark.in_process  # ablab train: no Ray, no server
def test_train_json_contract_and_mlflow_run(tiny_yaml, tmp_path):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    args = ("train", tiny_yaml, "--set", "train.epochs=1", "--tracking-uri", uri, "--json")
    out = ablab(*args, "--no-figures", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    for key in (
        "bleu",
        "bleu_lc",
        "chrf",
        "ece",
        "params",
        "tgt_tokens_per_s",
        "train_seconds",
        "status",
        "run_id",
    ):
        assert key in metrics, key
    assert metrics["status"] == "finished" and metrics["epochs"] == 1.0
    run = MlflowClient(uri).get_run(metrics["run_id"])
    assert run.data.params["train.epochs"] == "1" and run.info.run_name == "tiny"
    assert "test BLEU" in out.stderr
    assert not MlflowClient(uri).list_artifacts(metrics["run_id"], "figures")  # --no-figures
    workdirs = list((tmp_path / "runs").iterdir())
    assert len(workdirs) == 1 and (workdirs[0] / "result.json").is_file()

    again = ablab(*args, cwd=tmp_path)  # figures on, as by default
    assert json.loads(again.stdout.strip().splitlines()[-1]) == metrics  # finished: not trained twice
    drawn = {a.path for a in MlflowClient(uri).list_artifacts(metrics["run_id"], "figures")}
    assert drawn == {"figures/training_curves.png", "figures/reliability.png", "figures/attention.png"}
    assert len(MlflowClient(uri).search_runs([run.info.experiment_id])) == 1


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--set", "model.head=8"], "unknown key"),
        (["--set", "model.heads=3"], "divisible"),
        (["--set", "train.epochs=many"], "train.epochs"),
        (["--set", "schedule.name=cosine"], "valid names are"),
        (["--set", "model.heads"], "KEY=VALUE"),
        (["--set", "model.heads=" + "[" * 5000], "not valid YAML"),
    ],
)
def test_bad_config_exits_2_and_creates_nothing(tiny_yaml, tmp_path, args, fragment):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    out = ablab("train", tiny_yaml, *args, "--tracking-uri", uri, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert fragment in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "runs").exists()


def test_missing_data_exits_2_and_creates_nothing(tiny_yaml, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    out = ablab("train", tiny_yaml, "--set", f"data.dir={empty}", "--tracking-uri", uri, cwd=tmp_path)
    assert out.returncode == 2 and "lacks train.en.gz" in out.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "runs").exists()


def test_an_unwritable_store_or_run_folder_exits_2_before_training(tiny_yaml, tmp_path):
    (tmp_path / "mlruns").write_text("a file where the store's folder should be")
    out = ablab("train", tiny_yaml, cwd=tmp_path)  # the default store, ./mlruns/mlflow.db
    assert out.returncode == 2 and "mlruns is a file, not a folder" in out.stderr, out.stderr
    (tmp_path / "mlruns").unlink()
    (tmp_path / "runs").write_text("a file where checkpoints should go")
    out = ablab("train", tiny_yaml, cwd=tmp_path)
    assert out.returncode == 2 and "cannot hold checkpoints" in out.stderr, out.stderr
    assert not (tmp_path / "mlruns").exists()  # refused before anything was written


def test_missing_config_file_exits_2(tmp_path):
    out = ablab("train", tmp_path / "nope.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "no such file" in out.stderr


def test_an_empty_config_or_spec_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    for command in ("train", "run", "plan"):
        out = ablab(command, tmp_path / "empty.yaml", cwd=tmp_path)
        what = "config" if command == "train" else "spec"
        assert out.returncode == 2 and f"empty.yaml: the {what} is empty" in out.stderr, (command, out.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.yaml"]  # no store, no runs, no checkpoints


def test_schedules_exercise(tmp_path):
    out = ablab("schedules", "--steps", "100000", "--out", tmp_path / "sched", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "sched" / "schedules.csv")
    assert set(table.columns) == {"step", "schedule", "lr"}
    assert table.groupby("schedule").size().to_dict() == {
        "noam": 100_000,
        "warmup_cosine": 100_000,
        "warmup_linear": 100_000,
    }
    peaks = table.loc[table.groupby("schedule")["lr"].idxmax()].set_index("schedule")
    assert peaks.loc["noam", "step"] == 4000 and peaks.loc["noam", "lr"] == pytest.approx(
        (512 * 4000) ** -0.5
    )
    assert peaks.loc["warmup_cosine", "step"] == 2000 and peaks.loc["warmup_cosine", "lr"] == pytest.approx(
        3e-4
    )
    assert (tmp_path / "sched" / "schedules.png").stat().st_size > 10_000
    assert "peak lr" in out.stdout


def test_plan_warns_when_a_spec_has_fewer_than_three_seeds(tmp_path):
    from ablab.experiments.planning.table import seed_warning

    assert seed_warning(3) is None and "one seed" in seed_warning(1)
    spec = tmp_path / "two_seeds.yaml"
    body = {"baseline": {"config": tiny_dict()}, "ablations": {"no_ls": {"loss.label_smoothing": 0.0}}}
    spec.write_text(yaml.safe_dump({**body, "seeds": [1, 2]}))
    out = ablab("plan", spec, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "4 trials" in out.stdout
    assert "2 seeds; differences smaller than the seed spread cannot be told from noise" in out.stderr


def test_import_writes_an_exports_runs_once_and_refuses_a_folder_that_is_not_one(tmp_path):
    export = Path(__file__).resolve().parents[2] / "results" / "de_en_files" / "runs"
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    wrong = ablab("import", tmp_path, "--tracking-uri", uri, cwd=tmp_path)
    assert wrong.returncode == 2 and "runs.json.gz" in wrong.stderr and str(tmp_path) in wrong.stderr
    assert not (tmp_path / "store").exists()
    first = ablab("import", export, "--tracking-uri", uri, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "imported 2 runs into experiment 'ablab/de_en_files'" in first.stdout
    again = ablab("import", export, "--tracking-uri", uri, cwd=tmp_path)
    assert "imported 0 runs" in again.stdout and "already there" in again.stdout
    (experiment,) = [e for e in MlflowClient(uri).search_experiments() if e.name == "ablab/de_en_files"]
    assert len(MlflowClient(uri).search_runs([experiment.experiment_id])) == 2
