"""Crossed designs read as designs: contrasts against their closed forms, verdicts as constructed."""

import itertools

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import render, report
from ablab.analysis.factorial import INTERACTION, MAIN, SIMPLE, design, shown
from tests.analysis.test_report import sweep, trial

SEEDS = (1, 2, 3, 4)
SENTENCES = 400
TOKENS = 10  # per sentence: corpus NLL per token = mean over sentences of a sentence's NLL / 10
CELLS = {  # setting -> (model.norm, schedule.warmup_steps); the baseline is post-LN with warmup
    "baseline": ("post", 200),
    "warmup_steps=0": ("post", 0),
    "norm=pre": ("pre", 200),
    "norm=pre,warmup_steps=0": ("pre", 0),
}


def nll_sweep(pre: float, no_warmup: float, interaction: float, seed: int = 0):
    """Runs of a norm × warmup design whose per-sentence NLL is, for sentence i and seed s,
    ``base_i + pre·[pre] + no_warmup·[warmup 0] + interaction·[pre][warmup 0] + u_s + noise``
    (per token; lower is better), with a seed effect u_s shared by the seed's four runs."""
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.8, SENTENCES)
    rows, stats = [], {}
    for s in SEEDS:
        u = rng.normal(0, 0.05)
        for setting, (norm, warmup) in CELLS.items():
            a, b = norm == "pre", warmup == 0
            per_token = (
                base + pre * a + no_warmup * b + interaction * a * b + u + rng.normal(0, 0.1, SENTENCES)
            )
            run = f"{setting}-{s}"
            stats[run] = {"nll": np.stack([per_token * TOKENS, np.full(SENTENCES, TOKENS)], axis=1)}
            row = trial(
                setting, s, group="norm_warmup", **{"model.norm": norm, "schedule.warmup_steps": warmup}
            )
            row["test_nll"] = float(per_token.mean())
            if setting == "baseline":
                row["groups"] = ("baseline", "norm_warmup")
            rows.append(row)
    return sweep(rows, stats)


def run_scores(runs) -> dict[tuple[str, int], float]:
    return {(r.setting, r.seed): r.test_nll for r in runs.trials.itertuples()}


def test_the_design_is_read_from_the_configs_with_the_baseline_as_reference():
    runs = nll_sweep(-0.2, 0.5, -0.5)
    d = design("norm_warmup", runs.trials, ["model.norm", "schedule.warmup_steps"])
    assert [f.name for f in d.factors] == ["model.norm", "schedule.warmup_steps"]
    assert [f.reference for f in d.factors] == [("post",), ("200",)]
    assert d.shape == "2 × 2" and d.baseline_cell == (("post",), ("200",))
    labels = [(c.kind, c.label) for c in d.contrasts()]
    assert labels == [
        (MAIN, "model.norm post → pre"),
        (MAIN, "schedule.warmup_steps 200 → 0"),
        (INTERACTION, "schedule.warmup_steps 200 → 0 × model.norm post → pre"),
    ]


def test_contrasts_match_their_closed_form_and_the_verdicts_come_out_as_constructed(tmp_path):
    runs = nll_sweep(pre=-0.2, no_warmup=0.5, interaction=-0.5)
    made = report.build(runs, tmp_path, n_resamples=1000, primary_metric="test_nll")
    (section,) = made.sections
    y = run_scores(runs)
    post, no_warmup, pre, both = ([y[c, s] for s in SEEDS] for c in CELLS)  # per seed, in CELLS' order
    post, no_warmup, pre, both = map(np.array, (post, no_warmup, pre, both))
    closed = {  # the same contrasts of the runs' scores, by hand, mean over seeds
        "model.norm post → pre": np.mean((pre + both - post - no_warmup) / 2),
        "schedule.warmup_steps 200 → 0": np.mean((no_warmup + both - post - pre) / 2),
        "schedule.warmup_steps 200 → 0 × model.norm post → pre": np.mean((both - pre) - (no_warmup - post)),
    }
    truth = {  # the model's: each main effect averages the other factor's two levels
        "model.norm post → pre": -0.2 + -0.5 / 2,
        "schedule.warmup_steps 200 → 0": 0.5 + -0.5 / 2,
        "schedule.warmup_steps 200 → 0 × model.norm post → pre": -0.5,
    }
    rows = {r["effect"]: r for r in section.comparisons if r["metric"] == "test NLL" and r["kind"] != SIMPLE}
    assert set(rows) == set(closed)
    for effect, value in closed.items():
        delta = float(rows[effect]["Δ [95 % CI]"].split()[0].replace("−", "-"))
        assert delta == pytest.approx(value, abs=0.0005)
        assert value == pytest.approx(truth[effect], abs=0.05)
        assert rows[effect]["verdict"].startswith("differs")
    interaction = rows["schedule.warmup_steps 200 → 0 × model.norm post → pre"]
    assert interaction["kind"] == INTERACTION and interaction["verdict"] == "differs (lower)"
    assert interaction["better in"] == "-"  # an interaction has no better side
    assert rows["model.norm post → pre"]["better in"].endswith(f"/{len(SEEDS)} seeds")
    # its two parts are the warmup effect with post-LN and with pre-LN
    with_post, with_pre = np.mean(no_warmup - post), np.mean(both - pre)
    assert interaction["reference → level"] == f"{with_post:+.3f} → {with_pre:+.3f}".replace("-", "−")
    assert "verdict" not in section.rows[0]  # cells are not compared one by one with the baseline
    # the interaction differs: each factor's effect at each level of the other joins the primary family
    simple = {
        r["effect"]: r for r in section.comparisons if r["kind"] == SIMPLE and r["metric"] == "test NLL"
    }
    closed_simple = {
        "model.norm post → pre at schedule.warmup_steps = 200": np.mean(pre - post),
        "model.norm post → pre at schedule.warmup_steps = 0": np.mean(both - no_warmup),
        "schedule.warmup_steps 200 → 0 at model.norm = post": np.mean(no_warmup - post),
        "schedule.warmup_steps 200 → 0 at model.norm = pre": np.mean(both - pre),
    }
    assert set(simple) == set(closed_simple)
    for effect, value in closed_simple.items():
        assert float(simple[effect]["Δ [95 % CI]"].split()[0].replace("−", "-")) == pytest.approx(
            value, abs=5e-4
        )
    assert simple["schedule.warmup_steps 200 → 0 at model.norm = post"]["verdict"] == "differs (higher)"
    assert (
        simple["schedule.warmup_steps 200 → 0 at model.norm = pre"]["verdict"] == "inconclusive"
    )  # 0 by design
    assert (
        "schedule.warmup_steps 200 → 0 at model.norm = post (simple effect) raised test NLL"
        in section.finding
    )


def test_an_interaction_of_zero_is_inconclusive_while_the_main_effects_differ(tmp_path):
    runs = nll_sweep(pre=-0.3, no_warmup=0.4, interaction=0.0, seed=3)
    made = report.build(runs, tmp_path, n_resamples=1000, primary_metric="test_nll")
    verdicts = {(r["effect"], r["metric"]): r["verdict"] for r in made.sections[0].comparisons}
    assert verdicts["model.norm post → pre", "test NLL"] == "differs (lower)"
    assert verdicts["schedule.warmup_steps 200 → 0", "test NLL"] == "differs (higher)"
    assert verdicts["schedule.warmup_steps 200 → 0 × model.norm post → pre", "test NLL"] == "inconclusive"
    assert not any(" at " in effect for effect, _ in verdicts)  # no real interaction: no simple effects


def test_the_section_shows_the_table_the_effects_and_the_interaction_plot(tmp_path):
    made = report.build(nll_sweep(-0.2, 0.5, -0.5), tmp_path, n_resamples=500)
    (section,) = made.sections
    assert section.question == (
        "How do layer-norm placement and learning-rate warmup affect the results, each alone and together?"
    )
    assert section.design.startswith(
        "A 2 × 2 factorial design: model.norm (post, pre) × schedule.warmup_steps (0, 200); 4 cells"
    )
    ((caption, table),) = section.cell_tables
    assert caption.startswith("BLEU: mean over seeds [95 % interval], rows model.norm")
    assert [r["model.norm"] for r in table] == ["post", "pre"]
    assert table[0]["schedule.warmup_steps = 200"].endswith("◆")  # the baseline's cell
    assert not table[1]["schedule.warmup_steps = 200"].endswith("◆")
    assert [f.name for f in section.figures] == ["norm_warmup_interaction"]
    assert (tmp_path / "figures" / "norm_warmup_interaction.png").stat().st_size > 5000
    assert section.finding.count(": inconclusive, +0.00") == 3  # BLEU is logged alike in every run
    markdown = render.to_markdown(made)
    assert "The design's main effects, interactions and" in markdown and "| model.norm |" in markdown


def test_zipped_keys_are_one_factor_and_an_incomplete_crossing_is_no_design():
    rows = []
    for (layers, lr), heads in itertools.product([(2, 1e-3), (6, 5e-4)], [1, 8]):
        name = f"layers={layers},heads={heads}"
        rows.append(trial(name, 1, layers=layers, group="g", **{"optim.lr": lr, "model.heads": heads}))
    trials = pd.DataFrame(rows)
    d = design("g", trials, ["model.layers", "optim.lr", "model.heads"])
    assert [f.keys for f in d.factors] == [("model.layers", "optim.lr"), ("model.heads",)]
    assert d.baseline_cell is None and [f.reference for f in d.factors] == [("2", "0.001"), ("1",)]
    assert design("g", trials.iloc[:3], ["model.layers", "optim.lr", "model.heads"]) is None


def test_without_a_baseline_cell_the_reference_is_the_level_the_spec_declares_first():
    rows = [  # the runs came back 8 heads first, pre-LN first: the order a sweep finished them in
        trial(f"heads={h},norm={n}", 1, group="g", **{"model.heads": h, "model.norm": n})
        for h, n in itertools.product([8, 1], ["pre", "post"])
    ]
    trials = pd.DataFrame(rows)
    keys = ["model.heads", "model.norm"]
    plain = design("g", trials, keys)
    assert [f.reference for f in plain.factors] == [("8",), ("pre",)]
    assert plain.reference_rule == "the first level in the runs' order"
    declared = design("g", trials, keys, declared={"model.heads": ["1", "8"], "model.norm": ["post", "pre"]})
    assert [f.reference for f in declared.factors] == [("1",), ("post",)]
    assert declared.reference_rule == "the first level the spec declares"
    assert [c.label for c in declared.contrasts()][:2] == ["model.heads 1 → 8", "model.norm post → pre"]


def test_three_factors_give_main_effects_and_interactions_of_every_order():
    rows = [
        trial(f"c{a}{b}{c}", 1, group="g", **{"x.a": a, "x.b": b, "x.c": c})
        for a, b, c in itertools.product((0, 1), repeat=3)
    ]
    d = design("g", pd.DataFrame(rows), ["x.a", "x.b", "x.c"])
    effects = d.contrasts()
    assert [e.kind for e in effects] == [MAIN] * 3 + [INTERACTION] * 4
    for e in effects:  # each a contrast: weights sum to zero, ±1/4 for a main effect, ±1 for the 3-way
        weights = {**e.plus, **{c: -w for c, w in e.minus.items()}}
        assert sum(weights.values()) == pytest.approx(0.0)
    main, three_way = effects[0], effects[-1]
    assert sorted(main.plus.values()) == [0.25] * 4 and sorted(main.minus.values()) == [0.25] * 4
    signed = {**three_way.plus, **{c: -w for c, w in three_way.minus.items()}}
    assert len(signed) == 8 and sorted(abs(w) for w in signed.values()) == [1.0] * 8
    assert signed[(("1",), ("1",), ("1",))] == 1.0 and signed[(("0",), ("0",), ("0",))] == -1.0


def test_a_cell_that_is_also_another_groups_arm_keeps_its_comparison_there(tmp_path):
    runs = nll_sweep(-0.2, 0.5, -0.5)
    t = runs.trials
    t["groups"] = [
        ("no_warmup", "norm_warmup") if s == "warmup_steps=0" else g
        for s, g in zip(t["setting"], t["groups"], strict=True)
    ]
    made = report.build(runs, tmp_path, groups=["no_warmup", "norm_warmup"], n_resamples=300)
    single, crossed = made.sections
    assert single.group == "no_warmup" and crossed.cell_tables
    assert {r["setting"] for r in single.comparisons} == {"warmup_steps=0"}
    assert single.rows[1]["verdict"] == "inconclusive"  # BLEU: logged alike everywhere
    assert "no setting has a finished run" not in single.finding


def test_values_read_as_written_and_sampled_ones_short():
    whole = pd.Series([4.0, None, 1.0])  # integers with a gap become floats in a frame
    assert shown(whole).tolist() == ["4", "nan", "1"]
    values = pd.Series([0.1, 0.0025951315088475813, 5e-05, 0.158], dtype=object)
    assert shown(values).tolist() == ["0.1", "0.002595", "5e-05", "0.158"]
