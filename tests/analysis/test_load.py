"""Reading a sweep back from a real sqlite MLflow store: today's names and an older store's."""

import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from ablab.analysis.load import load
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import ensure_experiment

pytestmark = pytest.mark.integration


def trial_run(client, experiment_id, name, metrics):
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            record.KIND: record.TRIAL_KIND,
            record.TRIAL: name,
            record.TRIAL_HASH: name,
            record.SEED: "1",
            record.GROUPS: "baseline",
            record.STATUS: record.FINISHED,
            record.TEST_SET: "test_2016_flickr",
        },
    ).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(k, v, now + step, step) for k, v, step in metrics])
    client.set_terminated(run)
    return run


def test_todays_names_and_an_older_stores_read_alike(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment_id = ensure_experiment(uri, "ablab/both")
    client = MlflowClient(uri)
    new = trial_run(
        client,
        experiment_id,
        "baseline,seed=1",
        [("train/nll", 4.0, 10), ("epoch", 0.5, 10), ("train/nll", 3.0, 20), ("epoch", 1.0, 20)]
        + [("val/bleu", 12.0, 20), ("test/test_2016_flickr/bleu", 20.0, 20), ("run/params", 6e6, 20)],
    )
    old = trial_run(  # before the record's names: validation at its count, its update step beside
        client,
        experiment_id,
        "old,seed=1",
        [("train_loss", 4.5, 10), ("train_loss", 3.5, 20), ("val_bleu", 11.0, 1), ("epoch_step", 20, 1)]
        + [("epoch", 1.0, 1), ("bleu", 19.0, 20), ("params", 6e6, 20)],
    )
    runs = load(uri, "ablab/both")
    rows = runs.trials.set_index("run_id")
    assert rows.loc[new, "bleu"] == 20.0 and rows.loc[old, "bleu"] == 19.0
    assert rows.loc[new, "params"] == rows.loc[old, "params"] == 6e6
    curves = runs.curves.set_index(["run_id", "metric", "step"])["epoch"]
    assert curves[(new, "val/bleu", 20)] == 1.0 and curves[(new, "train/nll", 10)] == 0.5
    assert curves[(old, "val/bleu", 20)] == 1.0  # moved to its update step, the epoch beside it
    assert (old, "train/loss", 10) in curves.index
    logged = runs.curves.set_index(["run_id", "metric", "step"])["time"]  # Unix seconds, as logged
    # 10 ms apart; Unix seconds near 1.8e9 carry float64 steps of 2.4e-7
    assert logged[(new, "train/nll", 20)] - logged[(new, "train/nll", 10)] == pytest.approx(0.010, abs=1e-6)
    assert abs(logged[(new, "train/nll", 10)] - time.time()) < 60


def test_a_run_recorded_before_an_option_existed_or_after_one_was_removed_reads_as_today(tmp_path):
    """A run logged before the optimizer options existed lacks their params; it trained with
    their defaults and is read so. A run logged while an option existed that the trainer no longer
    has carries its param, which is not read. Either way the report sees no key varied."""
    from mlflow.entities import Param

    from ablab.analysis.settings_table import varied_keys
    from ablab.trainer.config.schema import Config, flatten, neutral_defaults

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment_id = ensure_experiment(uri, "ablab/mixed")
    client = MlflowClient(uri)
    today = flatten(Config())
    before = {k: v for k, v in today.items() if k not in neutral_defaults()}
    assert "optim.lion_betas" in today and "optim.lion_betas" not in before
    removed = {**today, "eval.run_figures": True}  # an option that existed for a while
    for name, params in (("new,seed=1", today), ("old,seed=2", before), ("between,seed=3", removed)):
        run = trial_run(client, experiment_id, name, [("test/test_2016_flickr/bleu", 20.0, 1)])
        client.log_batch(run, params=[Param(k, record.param_text(v)) for k, v in params.items()])
    trials = load(uri, "ablab/mixed").trials
    assert trials["optim.lion_betas"].tolist() == ["[0.9, 0.99]"] * 3
    assert trials["optim.momentum"].tolist() == [0.9] * 3
    assert "eval.run_figures" not in trials and "model.heads" in trials
    assert varied_keys(trials) == []


def test_what_each_run_trained_in_and_on_is_read_and_an_older_runs_named_precision_stands_in(tmp_path):
    from mlflow.entities import Param

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment_id = ensure_experiment(uri, "ablab/hardware")
    client = MlflowClient(uri)
    runs = {}
    for name, precision_param, tags in (
        ("tagged,seed=1", "auto", {record.PRECISION: "fp32", record.DEVICE_KIND: "AMD EPYC (AVX2)"}),
        ("named,seed=1", "bf16", {}),  # before the tags: its config named bf16
        ("auto,seed=1", "auto", {}),  # before the tags, and 'auto' says nothing
    ):
        runs[name] = trial_run(client, experiment_id, name, [("test/test_2016_flickr/bleu", 20.0, 1)])
        client.log_batch(runs[name], params=[Param("train.precision", precision_param)])
        for key, value in tags.items():
            client.set_tag(runs[name], key, value)
    rows = load(uri, "ablab/hardware").trials.set_index("run_id")
    assert rows.loc[runs["tagged,seed=1"], ["precision", "device_kind"]].tolist() == [
        "fp32",
        "AMD EPYC (AVX2)",
    ]
    assert rows.loc[runs["named,seed=1"], "precision"] == "bf16"
    assert rows.loc[runs["auto,seed=1"], ["precision", "device_kind"]].isna().all()


def test_the_sweep_run_of_the_spec_file_is_chosen_where_two_specs_share_an_experiment(tmp_path):
    """A sequential spec named like the fixed one shares its experiment: each one's report goes to
    its own newest sweep run; a sweep made before the spec file was recorded stands for any."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment_id = ensure_experiment(uri, "ablab/shared")
    client = MlflowClient(uri)
    trial_run(client, experiment_id, "baseline,seed=1", [("test/test_2016_flickr/bleu", 20.0, 1)])

    def sweep(**tags):
        time.sleep(0.01)  # distinct start times
        return client.create_run(experiment_id, tags={record.KIND: record.SWEEP_KIND, **tags}).info.run_id

    older = sweep()
    assert load(uri, "ablab/shared", "fixed.yaml").parent_run_id == older
    fixed = sweep(**{record.SPEC_FILE: "fixed.yaml"})
    sequential = sweep(**{record.SPEC_FILE: "sequential.yaml"})
    assert load(uri, "ablab/shared", "fixed.yaml").parent_run_id == fixed
    assert load(uri, "ablab/shared", "sequential.yaml").parent_run_id == sequential
    assert load(uri, "ablab/shared").parent_run_id == sequential  # an experiment name: the newest
