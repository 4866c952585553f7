"""Figures hold what they claim, and no text in them collides (checked on the saved drawing)."""

import numpy as np
import pandas as pd
import pytest

from ablab.analysis.figures import (
    attention_matrix,
    palette,
    plot_attention,
    plot_metric_by_value,
    plot_metric_vs_params,
    plot_reliability,
    plot_schedules,
    plot_training_curves,
)
from ablab.analysis.placement import collisions, place_labels

SETTINGS = ["baseline", "layers=1", "layers=2", "layers=4", "layers=6"]
COLORS = palette(SETTINGS)


def test_the_baseline_is_black_and_every_setting_keeps_its_colour():
    assert COLORS["baseline"] == (0.1, 0.1, 0.1)
    assert len(set(COLORS.values())) == len(SETTINGS)
    assert palette(["baseline", "layers=1", "x"])["layers=1"] == COLORS["layers=1"]


def test_schedule_plot_labels_every_peak_without_collisions():
    step = np.arange(1, 2001)
    table = pd.concat(
        [
            pd.DataFrame({"step": step, "schedule": "a", "lr": np.minimum(step / 400, 1) * 1e-3}),
            pd.DataFrame(
                {"step": step, "schedule": "b", "lr": np.minimum(step / 420, 1) * 1e-3}
            ),  # a near twin
            pd.DataFrame({"step": step, "schedule": "c", "lr": np.minimum(step / 100, 1) * 3e-4}),
        ]
    )
    fig = plot_schedules(table)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "update step" and ax.get_ylabel() == "learning rate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == [
        "a: 1.00e-03 at 400",
        "b: 1.00e-03 at 420",
        "c: 3.00e-04 at 100",
    ]
    assert collisions(fig) == []


SUMMARY = pd.DataFrame(
    {
        "setting": ["layers=1", "layers=2", "baseline", "layers=4", "layers=6"],
        "model.layers": [1, 2, 3, 4, 6],
        "n": [3] * 5,
        "params_mean": [3.37e6, 4.69e6, 6.00e6, 7.32e6, 9.95e6],
        "bleu_mean": [24.1, 26.9, 27.9, 27.6, 27.7],  # close together: labels must dodge
        "bleu_sd": [0.5, 0.4, 0.3, float("nan"), 0.6],
    }
)


def test_bleu_against_params_is_in_millions_with_a_clear_label_per_point():
    fig = plot_metric_vs_params(SUMMARY, COLORS, title="depth")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "parameters" and ax.get_title() == "depth" and ax.get_legend() is None
    assert sorted(t.get_text() for t in ax.texts) == sorted(SUMMARY["setting"])
    assert all(t.get_text().endswith(" M") for t in ax.get_xticklabels() if t.get_text())
    assert len(ax.containers) == 5  # one errorbar per setting
    assert collisions(fig) == []


def test_bleu_against_params_shows_every_error_bar_whole():
    """Two close means with a wide seed spread (the smoke sweep's): the bars, not the means,
    set the y-range."""
    summary = pd.DataFrame(
        {"setting": ["baseline", "seq2seq"], "bleu_mean": [11.30, 10.20], "bleu_sd": [1.63, 0.62],
         "params_mean": [0.92e6, 0.67e6]}
    )  # fmt: skip
    low, high = plot_metric_vs_params(summary, {"baseline": "k", "seq2seq": "C1"}).axes[0].get_ylim()
    assert low < 11.30 - 1.63 and high > 11.30 + 1.63


def test_metric_by_value_orders_the_axis():
    fig = plot_metric_by_value(SUMMARY.iloc[::-1], "model.layers", COLORS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "6"]
    assert ax.get_lines()[0].get_ydata().tolist() == [24.1, 26.9, 27.9, 27.6, 27.7]
    assert collisions(fig) == []


def bins_for(setting, seed, accuracy, count):
    return [
        {
            "setting": setting,
            "seed": seed,
            "bin": b,
            "lower": b / 2,
            "upper": (b + 1) / 2,
            "count": count,
            "confidence": 0.25 + b / 2,
            "accuracy": accuracy[b],
        }
        for b in range(2)
    ]


def test_reliability_pools_seeds_shares_the_count_scale_and_names_the_seeds():
    bins = pd.DataFrame(
        bins_for("baseline", 1, [0.2, 0.8], 10)
        + bins_for("baseline", 2, [0.4, 0.6], 10)
        + bins_for("no_ls", 1, [0.1, 0.9], 500)
    )
    fig = plot_reliability(bins, {"baseline": 0.05, "no_ls": 0.15}, palette(["baseline", "no_ls"]))
    top_left, top_right, bottom_left, bottom_right = fig.axes
    assert (
        top_left.get_title() == "baseline (seeds 1, 2, pooled)" and top_right.get_title() == "no_ls (seed 1)"
    )
    diagonal, curve = top_left.get_lines()
    assert diagonal.get_xydata().tolist() == [[0, 0], [1, 1]]
    assert curve.get_ydata().tolist() == pytest.approx([0.3, 0.7])  # seeds pooled by count
    assert "ECE 0.050" in top_left.get_legend().get_texts()[1].get_text()
    assert [p.get_height() for p in bottom_left.patches] == [20, 20]
    assert bottom_left.get_ylim() == bottom_right.get_ylim()  # one scale for both panels
    assert collisions(fig) == []


def curves(rows_per_run: dict[tuple[str, str], tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for (run_id, setting), (nll, bleu) in rows_per_run.items():
        rows += [
            {"run_id": run_id, "setting": setting, "metric": "train/nll", "step": 10 * (i + 1), "value": v}
            for i, v in enumerate(nll)
        ]
        rows += [
            {"run_id": run_id, "setting": setting, "metric": "val/bleu", "step": 50 * (e + 1), "value": v}
            for e, v in enumerate(bleu)
        ]
    return pd.DataFrame(rows).assign(seed=1, epoch=None)


def test_training_curves_are_a_mean_with_the_seeds_range_and_mark_divergence():
    table = curves(
        {
            ("a1", "baseline"): ([6, 5, 4, 3, 2] * 2, [5.0, 18.5, 20.0]),
            ("a2", "baseline"): ([6, 5, 4, 3, 2] * 2, [7.0, 20.5, 22.0]),
            ("b1", "no_warmup"): ([6, 9], []),
        }
    )
    fig = plot_training_curves(table, palette(["baseline", "no_warmup"]), {"b1": 20})
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["baseline", "no_warmup", "diverged"]
    mean = [line for line in right.get_lines() if line.get_label() == "baseline"][0]
    assert mean.get_ydata().tolist() == [6.0, 19.5, 21.0]  # the mean of the seeds
    stars = [line for line in right.get_lines() if line.get_marker() == "*" and len(line.get_xydata())]
    assert stars[0].get_xydata().tolist() == [[100, 19.5]]  # 19.5 >= 0.9 * 21
    crosses = [line for line in left.get_lines() if line.get_marker() == "x" and len(line.get_xydata())]
    assert crosses[0].get_xydata().tolist() == [[20, 9]]
    assert left.collections and right.collections  # the seeds' range, shaded
    assert collisions(fig) == []


def test_attention_heatmaps_put_tokens_on_the_axes():
    cross = [[[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.5, 0.5]]]]  # 1 layer, 2 heads, T 2, S 2
    transformer = {
        "source": "a b",
        "source_tokens": ["a", "</s>"],
        "target_tokens": ["x", "</s>"],
        "maps": {"cross": cross, "encoder_self": []},
    }
    seq2seq = {**transformer, "maps": {"attention": [[1.0, 0.0], [0.0, 1.0]]}}
    assert attention_matrix(transformer)[0].tolist() == [[0.7, 0.3], [0.35, 0.65]]
    fig = plot_attention({"Transformer": transformer, "seq2seq": seq2seq})
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == ["a", "</s>"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["x", "</s>"]
    assert left.get_title().startswith("Transformer") and right.get_title().startswith("seq2seq")
    assert collisions(fig) == []


def test_collisions_finds_overlapping_and_escaping_text():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    ax.annotate("far out", (1.0, 0.5), xytext=(30, 0), textcoords="offset points")
    found = collisions(fig)
    assert "'first label' overlaps 'second label'" in found
    assert "label 'far out' crosses the edge of its axes" in found
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    drawn = place_labels(ax, [(0.5, 0.5), (0.5, 0.5), (0.5, 0.5)], ["one", "two", "three"])
    assert len(drawn) == 3 and collisions(fig) == []  # three labels on one point dodge each other
