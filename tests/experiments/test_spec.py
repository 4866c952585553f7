"""Spec expansion: counts, names, hashes, deduplication, and every shipped spec."""

import re
from pathlib import Path
from typing import get_args

import pytest
import yaml

from ablab.analysis.metrics import METRICS
from ablab.experiments.planning.cost import estimate, plan_records
from ablab.experiments.planning.table import crossed_groups
from ablab.experiments.reporting import target_experiment
from ablab.experiments.spec.expand import SpecError, load_plan
from ablab.experiments.spec.schema import PrimaryMetric
from ablab.experiments.sweep.mlflow_runs import describe, group_question
from ablab.trainer.data.corpus import SplitFiles, split_files
from ablab.trainer.evaluation.evaluate import bleu_tokenizer
from tests.conftest import tiny_dict

SPECS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "specs").glob("*.yaml"))
# specs sized for this 2-core CPU
CPU_SCALE = (
    "smoke.yaml",
    "suite_cpu.yaml",
    "suite_cpu_sequential.yaml",
    "norm_warmup.yaml",
    "de_en_files.yaml",
    "optimizers.yaml",
)
SMALL_MODEL = ("smoke.yaml", "norm_warmup.yaml", "optimizers.yaml")  # a smaller model than the seeds'


def write_spec(tmp_path, body: dict, name="s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def spec(**extra) -> dict:
    return {"baseline": {"config": tiny_dict()}, **extra}


def test_counts_are_the_product_of_axes_times_seeds(tmp_path):
    body = spec(
        ablations={
            "g": {
                "arms": {"a": {"model.dropout": 0.0}, "b": {"model.dropout": 0.2}},
                "grid": {"model.heads": [1, 2], "model.ff_dim": [16, 32, 48]},
                "zip": {"model.layers": [1, 3], "optim.lr": [0.001, 0.002]},
            },
            "solo": {"loss.label_smoothing": 0.0},
        },
        seeds=[1, 2, 3],
    )
    plan = load_plan(write_spec(tmp_path, body))
    assert len(plan.trials) == (1 + 2 * (2 * 3) * 2 + 1) * 3
    assert len({t.name for t in plan.trials}) == len({t.hash for t in plan.trials}) == len(plan.trials)
    names = {t.name for t in plan.trials}
    assert "a,heads=2,ff_dim=48,layers=3,lr=0.002,seed=3" in names and "solo,seed=1" in names
    assert "baseline,seed=2" in names
    trial = next(t for t in plan.trials if t.name == "b,heads=1,ff_dim=16,layers=1,lr=0.001,seed=2")
    assert (trial.config.model.dropout, trial.config.model.heads, trial.config.model.layers) == (0.2, 1, 1)
    assert trial.config.optim.lr == 0.001 and trial.config.train.seed == 2 and trial.arm == "b"
    assert trial.axes == {"model.heads": 1, "model.ff_dim": 16, "model.layers": 1, "optim.lr": 0.001}


def test_baseline_runs_once_per_seed_even_when_a_point_equals_it(tmp_path):
    base_heads = tiny_dict()["model"]["heads"]
    body = spec(ablations={"heads": {"grid": {"model.heads": [1, base_heads]}}}, seeds=[1, 2])
    plan = load_plan(write_spec(tmp_path, body))
    assert [t.name for t in plan.trials] == [
        "baseline,seed=1",
        "heads=1,seed=1",
        "baseline,seed=2",
        "heads=1,seed=2",
    ]
    assert plan.trials[0].groups == ("baseline", "heads")


def test_hashes_are_stable_and_content_based(tmp_path):
    a = load_plan(write_spec(tmp_path, spec(ablations={"x": {"model.heads": 1}}), "a.yaml"))
    b = load_plan(write_spec(tmp_path, spec(ablations={"y": {"arms": {"x": {"model.heads": 1}}}}), "b.yaml"))
    assert [t.hash for t in a.trials] == [t.hash for t in b.trials]
    assert a.hash != b.hash  # the spec hash includes the spec's name


def test_budget_and_resources_reach_the_config(tmp_path):
    body = spec(budget={"steps": 7}, resources={"cpus": 2}, ablations={"x": {"model.heads": 1}})
    trial = load_plan(write_spec(tmp_path, body)).trials[1]
    assert trial.config.train.max_steps == 7 and trial.config.train.epochs is None
    assert trial.config.train.threads == 2 and trial.resources.cpus == 2


def test_baseline_path_is_relative_to_the_spec(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text(yaml.safe_dump(tiny_dict()))
    (tmp_path / "specs").mkdir()
    path = write_spec(
        tmp_path / "specs", {"baseline": {"config": "../configs/base.yaml", "overrides": {"model.heads": 1}}}
    )
    assert load_plan(path).trials[0].config.model.heads == 1


def test_search_edges_are_validated(tmp_path):
    body = spec(search={"space": {"optim.lr": {"loguniform": [1e-4, 1e-2]}}, "trials": 3})
    assert load_plan(write_spec(tmp_path, body)).spec.search.trials == 3
    bad = spec(search={"space": {"model.dropout": {"uniform": [0.5, 1.5]}}, "trials": 3})
    with pytest.raises(SpecError, match=r"search.space\[model.dropout\]"):
        load_plan(write_spec(tmp_path, bad))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_loads_validates_and_plans(path):
    plan = load_plan(path)
    records = plan_records(plan, estimate(plan, probe_budget=0.0))  # measured rates: test_plan.py
    assert len(records) == len(plan.trials) >= 2 or path.name == "baseline.yaml"
    assert all(r["params"] > 0 and r["flops"] > 0 for r in records)
    assert len({r["hash"] for r in records}) == len(records)
    if path.name not in SMALL_MODEL:  # the seed settings; full size on GPUs, suite_cpu on CPU cores
        base = plan.trials[0].config
        assert (base.model.layers, base.model.d_model, base.model.heads) == (3, 256, 4)
        assert base.loss.label_smoothing == 0.1 and base.optim.clip_norm == 1.0
        on_gpus = path.name not in CPU_SCALE
        assert all((t.resources.gpus > 0) == on_gpus for t in plan.trials)


def test_the_german_to_english_spec_reads_multi30k_reversed_through_the_files_layout(multi30k_dir):
    plan = load_plan(SPECS[[p.name for p in SPECS].index("de_en_files.yaml")])
    data = plan.trials[0].config.data
    found = split_files(data, plan.trials[0].config.eval.test_sets)
    assert (data.corpus, data.src_lang, data.tgt_lang) == ("files", "de", "en")
    assert found["train"] == SplitFiles("train", multi30k_dir / "train.de.gz", multi30k_dir / "train.en.gz")
    assert list(found) == ["train", "val", "test_2016_flickr", "test_2017_flickr"]
    assert bleu_tokenizer(data.tgt_lang, plan.trials[0].config.eval.bleu_tokenize) == "13a"


def test_each_optimizer_searches_its_own_range_and_a_group_space_needs_a_search(tmp_path):
    plan = load_plan(SPECS[[p.name for p in SPECS].index("optimizers.yaml")])
    low = {t.name.split(",")[0]: plan.search_space(t)["optim.lr"].loguniform[0] for t in plan.trials}
    assert low == {"baseline": 0.0005, "lion": 0.00005, "adafactor": 0.001, "sgd": 0.03}
    lion = {"arms": {"lion": {"optim.name": "lion"}}, "search": {"optim.lr": {"uniform": [0, 1]}}}
    body = spec(ablations={"lion": lion})
    with pytest.raises(
        SpecError, match=r"ablations \['lion'\] set a search space but the spec has no search"
    ):
        load_plan(write_spec(tmp_path, body))
    body["search"] = {"space": {"optim.lr": {"loguniform": [1e-4, 1e-3]}}, "trials": 2}
    body["ablations"]["lion"]["search"] = {"optim.lr": {"uniform": [-1.0, 1.0]}}
    with pytest.raises(SpecError, match=r"ablations.lion.search\[optim.lr\] at lion"):
        load_plan(write_spec(tmp_path, body))  # the group's own space is validated at its edges


def test_suite_contains_every_ablation_with_one_baseline_per_seed():
    suite = load_plan(SPECS[[p.name for p in SPECS].index("suite.yaml")])
    singles = [load_plan(p) for p in SPECS if p.name not in ("suite.yaml", "baseline.yaml", *CPU_SCALE)]
    assert {t.hash for plan in singles for t in plan.trials} == {t.hash for t in suite.trials}
    assert sum(t.name.startswith("baseline,") for t in suite.trials) == len(suite.spec.seeds)


def test_a_crossed_group_plans_as_its_grid_and_carries_its_own_question():
    path = SPECS[[p.name for p in SPECS].index("norm_warmup.yaml")]
    plan = load_plan(path)
    assert crossed_groups(plan) == [
        "norm_warmup: a 2 × 2 factorial design, model.norm [post, pre] × schedule.warmup_steps [100, 0] "
        "= 4 cells (the baseline's among them), 12 trials; the report gives its main effects and interactions"
    ]
    assert "- **norm_warmup**: Does post-LN need learning-rate warmup where pre-LN does not" in describe(plan)
    target = target_experiment(str(path))
    assert target.texts["norm_warmup"].question == group_question(plan, "norm_warmup")
    assert target.texts["norm_warmup"].expect.startswith("Xiong et al. 2020: without warmup post-LN")


def test_the_primary_metric_is_the_spec_s_unless_a_group_names_its_own(tmp_path):
    groups = {
        "no_ls": {"arms": {"none": {"loss.label_smoothing": 0.0}}, "primary_metric": "ece"},
        "d": {"model.dropout": 0.0},
    }
    target = target_experiment(str(write_spec(tmp_path, spec(ablations=groups, primary_metric="chrf"))))
    assert target.primary_metric == "chrf"
    assert target.texts["no_ls"].primary == "ece" and target.texts["d"].primary == ""
    plain = target_experiment(str(write_spec(tmp_path, spec(ablations=groups), name="plain.yaml")))
    assert plain.primary_metric == "bleu"


def test_a_groups_question_is_derived_from_every_key_it_varies(tmp_path):
    groups = {
        "both": {"grid": {"model.heads": [1, 8], "model.layers": [2, 4]}},
        "depth": {"zip": {"model.layers": [2, 4], "optim.lr": [1e-3, 5e-4]}},
        "no_ls": {"loss.label_smoothing": 0.0},
        "other": {"grid": {"model.dropout": [0.0, 0.3]}},
    }
    plan = load_plan(write_spec(tmp_path, spec(ablations=groups)))
    assert {g: group_question(plan, g) for g in groups} == {
        "both": "How do the number of attention heads and depth affect the results, each alone and together?",
        "depth": "How does depth trade parameters for BLEU? (optim.lr moving with model.layers)",
        "no_ls": "Does label smoothing change translation quality and calibration?",
        "other": "What does changing model.dropout do?",
    }
    assert [line.split(":")[0] for line in crossed_groups(plan)] == ["both"]


def test_the_cpu_suite_has_the_suites_trials_for_its_seeds():
    suite = load_plan(SPECS[[p.name for p in SPECS].index("suite.yaml")])
    cpu = load_plan(SPECS[[p.name for p in SPECS].index("suite_cpu.yaml")])
    assert {t.name for t in cpu.trials} == {t.name for t in suite.trials if t.seed in cpu.spec.seeds}
    assert cpu.trials[0].config.model == suite.trials[0].config.model  # the seed model, kept


def test_the_sequential_cpu_suite_starts_from_the_cpu_suites_runs():
    """Its first look is suite_cpu.yaml's 39 trials, hash for hash, in the same experiment: those
    runs are reused, and its added seeds are the same trials at further seeds."""
    fixed = load_plan(SPECS[[p.name for p in SPECS].index("suite_cpu.yaml")])
    sequential = load_plan(SPECS[[p.name for p in SPECS].index("suite_cpu_sequential.yaml")])
    assert sequential.experiment == fixed.experiment == "ablab/suite_cpu"
    assert [(t.name, t.hash) for t in sequential.trials] == [(t.name, t.hash) for t in fixed.trials]
    design = sequential.spec.design
    assert (design.looks, sequential.spec.max_runs) == ([3, 5, 7], 70)
    assert sequential.spec.initial_seeds == fixed.spec.seeds


from tests.experiments.malformed_specs import MALFORMED, spec_text  # noqa: E402


@pytest.mark.parametrize("text, fragment", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_specs_are_refused_with_the_problem_named(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_bytes(spec_text(text))
    with pytest.raises(SpecError) as err:
        load_plan(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_a_group_declares_its_levels_in_its_own_order_for_the_report_s_references(tmp_path):
    groups = {
        "g": {
            "arms": {"big": {"model.ff_dim": 64}, "small": {"model.ff_dim": 16, "model.dropout": 0.0}},
            "grid": {"model.heads": [4, 1]},
            "zip": {"model.layers": [2, 1], "optim.lr": [0.001, 0.002]},
        }
    }
    plan = load_plan(write_spec(tmp_path, spec(ablations=groups)))
    assert plan.spec.ablations["g"].declared_levels() == {
        "model.ff_dim": ["64", "16"],
        "model.dropout": ["0.0"],
        "model.heads": ["4", "1"],
        "model.layers": ["2", "1"],
        "optim.lr": ["0.001", "0.002"],
    }
    assert target_experiment(str(plan.path)).texts["g"].levels["model.heads"] == ["4", "1"]


def test_the_primary_metrics_a_spec_may_name_are_the_metrics_a_report_compares():
    assert get_args(PrimaryMetric) == tuple(METRICS)


def test_a_sequential_spec_starts_with_the_same_trials_as_its_first_seeds(tmp_path):
    """seeds: {initial, max, step} expands to seeds 1..initial, trial for trial (hashes included)
    the spec with those seeds listed: finished runs of a fixed spec serve its first look."""
    groups = {"g": {"arms": {"a": {"model.dropout": 0.0}}}}
    sequential = load_plan(
        write_spec(tmp_path, spec(ablations=groups, seeds={"initial": 3, "max": 10}), "q.yaml")
    )
    fixed = load_plan(write_spec(tmp_path, spec(ablations=groups, seeds=[1, 2, 3]), "f.yaml"))
    assert [(t.name, t.hash) for t in sequential.trials] == [(t.name, t.hash) for t in fixed.trials]
    assert sequential.spec.design.looks == [3, 5, 7, 10] and fixed.spec.design is None
    assert sequential.spec.initial_seeds == [1, 2, 3]


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"seeds": {"initial": 3, "max": 2}}, "seeds: seeds.max (2) is below seeds.initial (3)"),
        ({"seeds": {"initial": 3}}, "seeds.max: Field required"),
        ({"seeds": {"initial": 3, "max": 6, "stpe": 2}}, "seeds.stpe: unknown key"),
        ({"seeds": {"initial": 1, "max": 6}}, "seeds.initial: Input should be greater than or equal to 2"),
        ({"seeds": [1, 2], "max_runs": 10}, "max_runs caps a sequential design"),
    ],
)
def test_a_bad_sequential_design_names_its_key(tmp_path, extra, fragment):
    with pytest.raises(SpecError, match=re.escape(fragment)):
        load_plan(write_spec(tmp_path, spec(**extra)))


def test_a_sequential_design_with_a_search_is_refused(tmp_path):
    body = spec(
        seeds={"initial": 3, "max": 6},
        search={"space": {"optim.lr": {"loguniform": [1e-4, 1e-2]}}, "trials": 3},
    )
    with pytest.raises(SpecError, match="seeds: {initial, max, step} with a search"):
        load_plan(write_spec(tmp_path, body))
