import pandas as pd
import pytest

from analysis.figures import (
    attention_matrix,
    plot_attention,
    plot_loss_curves,
    plot_metric_by_value,
    plot_metric_vs_params,
    plot_reliability,
    plot_schedules,
    plot_val_bleu,
)


def test_schedule_plot_has_one_line_per_schedule_and_marked_peaks():
    table = pd.DataFrame(
        {
            "step": [1, 2, 3] * 3,
            "schedule": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "lr": [1, 3, 2, 2, 1, 0, 1, 3, 2],
        }
    )
    fig = plot_schedules(table)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "update step" and ax.get_ylabel() == "learning rate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["a, c: peak 3.00e+00\nat step 2", "b: peak 2.00e+00\nat step 1"]


SUMMARY = pd.DataFrame(
    {
        "setting": ["layers=1", "baseline", "layers=6"],
        "model.layers": [1, 3, 6],
        "n": [2, 2, 2],
        "params_mean": [3.4e6, 6.0e6, 9.9e6],
        "bleu_mean": [18.0, 21.0, 22.5],
        "bleu_sd": [0.5, 0.4, float("nan")],
    }
)


def test_bleu_against_params_has_a_labelled_point_with_error_bars_per_setting():
    fig = plot_metric_vs_params(SUMMARY, title="depth")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "parameters" and ax.get_title() == "depth"
    assert [t.get_text() for t in ax.texts] == ["layers=1", "baseline", "layers=6"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["layers=1", "baseline", "layers=6"]
    points = [line.get_xydata()[0].tolist() for line in ax.get_lines() if len(line.get_xydata()) == 1]
    assert [3.4e6, 18.0] in points and [9.9e6, 22.5] in points
    assert len(ax.containers) == 3  # one errorbar container per setting


def test_metric_by_value_orders_the_axis():
    fig = plot_metric_by_value(SUMMARY.iloc[::-1], "model.layers")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3", "6"]
    assert ax.get_lines()[0].get_ydata().tolist() == [18.0, 21.0, 22.5]


def bins_for(setting, accuracy):
    return [
        {
            "setting": setting,
            "bin": b,
            "lower": b / 2,
            "upper": (b + 1) / 2,
            "count": 10,
            "confidence": 0.25 + b / 2,
            "accuracy": accuracy[b],
        }
        for b in range(2)
    ]


def test_reliability_pools_seeds_and_shows_diagonal_counts_and_ece():
    bins = pd.DataFrame(
        bins_for("baseline", [0.2, 0.8]) + bins_for("baseline", [0.4, 0.6]) + bins_for("no_ls", [0.1, 0.9])
    )
    fig = plot_reliability(bins, {"baseline": 0.05, "no_ls": 0.15})
    top_left, top_right, bottom_left, _ = fig.axes
    assert top_left.get_title() == "baseline" and top_right.get_title() == "no_ls"
    diagonal, curve = top_left.get_lines()
    assert diagonal.get_xydata().tolist() == [[0, 0], [1, 1]]
    assert curve.get_ydata().tolist() == pytest.approx([0.3, 0.7])  # seeds pooled by count
    assert "ECE 0.050" in top_left.get_legend().get_texts()[1].get_text()
    assert [p.get_height() for p in bottom_left.patches] == [20, 20]
    assert bottom_left.get_xlabel() == "confidence"


def curve_rows(run_id, setting, losses, val):
    rows = [
        {
            "run_id": run_id,
            "setting": setting,
            "metric": "train_loss",
            "step": i + 1,
            "epoch": None,
            "value": v,
        }
        for i, v in enumerate(losses)
    ]
    rows += [
        {"run_id": run_id, "setting": setting, "metric": m, "step": 2 * (e + 1), "epoch": e + 1, "value": v}
        for e, (m, v) in enumerate(val)
    ]
    return rows


def test_loss_curves_mark_divergence():
    curves = pd.DataFrame(
        curve_rows("a", "baseline", [5, 4, 3, 2], [("val_loss", 4.0), ("val_loss", 3.0)])
        + curve_rows("b", "no_warmup", [5, 9], [])
    )
    fig = plot_loss_curves(curves, {"b": 2})
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["baseline", "no_warmup"]
    assert [t.get_text() for t in left.texts] == ["diverged at 2"]
    marker = [line for line in left.get_lines() if line.get_marker() == "x"]
    assert marker and marker[0].get_xydata().tolist() == [[2, 9]]
    assert right.get_lines()[0].get_ydata().tolist() == [4.0, 3.0]


def test_val_bleu_marks_the_first_epoch_at_90_percent_of_best():
    rows = [
        {"run_id": "a", "setting": "baseline", "metric": "val_bleu", "step": e, "epoch": e, "value": v}
        for e, v in zip([1, 2, 3, 4], [5.0, 18.5, 20.0, 19.0], strict=True)
    ]
    fig = plot_val_bleu(pd.DataFrame(rows))
    ax = fig.axes[0]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*" and len(line.get_xydata())]
    assert stars[0].get_xydata().tolist() == [[2, 18.5]]  # 18.5 >= 0.9 * 20
    assert ax.get_xlabel() == "epoch"


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
