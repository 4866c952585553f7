"""Figures hold what they claim, and no text in them collides (checked on the saved drawing)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ablab.analysis.curve_figures import plot_training_curves
from ablab.analysis.figures import (
    legend_below,
    palette,
    plain_ticks,
    plot_metric_by_value,
    plot_metric_vs_params,
    plot_schedules,
)
from ablab.analysis.model_figures import attention_matrix, plot_attention, plot_reliability
from ablab.analysis.placement import collisions, place_labels
from ablab.analysis.report_figures import reference_colours, seeds_text, training_caption

SETTINGS = ["baseline", "layers=1", "layers=2", "layers=4", "layers=6"]
COLORS = palette(SETTINGS)


def legend_as_read(fig) -> list[str]:
    """The figure legend's entries as a reader takes them: left to right, then row by row."""
    fig.canvas.draw()
    boxes = [(t.get_window_extent(), t.get_text()) for t in fig.legends[0].get_texts()]
    return [text for box, text in sorted(boxes, key=lambda b: (-round(b[0].y0), b[0].x0))]


def assert_readable(fig) -> None:
    """No legend over plotted data (the points of every line, in display coordinates) and no
    axis with an offset (``1e−4``) that the reader must apply to its ticks."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", f"offset notation on {ax.get_title()!r}"
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, "the legend runs past the figure's edges"
        for ax in fig.axes:
            for line in ax.get_lines():
                points = ax.transData.transform(np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2))
                covered = [p for p in points if np.isfinite(p).all() and box.contains(*p)]
                assert covered == [], f"the legend covers {line.get_label()!r} on {ax.get_title()!r}"
    assert collisions(fig) == []


def test_the_baseline_is_black_and_every_setting_keeps_its_colour():
    assert COLORS["baseline"] == (0.1, 0.1, 0.1)
    assert len(set(COLORS.values())) == len(SETTINGS)
    assert palette(["baseline", "layers=1", "x"])["layers=1"] == COLORS["layers=1"]
    grey = (0.5, 0.5, 0.5)
    many = palette(["baseline", *(f"arm{i}" for i in range(12))])
    assert all(tuple(round(c, 2) for c in colour) != grey for colour in many.values())
    assert len(set(many.values())) == 13  # twelve arms (suite_cpu's), twelve colours, the baseline's black
    # an arm's colour is its name's: the same in another report with other arms before it
    assert palette(["baseline", "no_warmup"])["no_warmup"] == palette(["heads=8", "no_warmup"])["no_warmup"]


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
    table = pd.concat([table, table[table["schedule"] == "a"].assign(schedule="a2")])  # a's twin
    decays = table[table["schedule"] == "c"].assign(schedule="d")  # c's peak, then a decay
    decays["lr"] = np.where(decays["step"] > 100, 3e-4 * 100 / decays["step"], decays["lr"])
    table = pd.concat([table, decays])
    fig = plot_schedules(table)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "update step" and ax.get_ylabel() == "learning rate"
    assert legend_as_read(fig) == ["a", "b", "c", "a2", "d"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    # twins: each in its own colour, the second dashed over the first; one label for both
    assert lines["a2"].get_color() != lines["a"].get_color()
    assert lines["a"].get_linestyle() == "-" and lines["a2"].get_linestyle() == "--"
    assert sorted(t.get_text() for t in ax.texts) == [
        "a and a2: peak 0.001 at update 400",
        "b: peak 0.001 at update 420",
        "c and d: peak 0.0003 at update 100",  # two schedules, one peak: one label
    ]
    shared = [t for t in ax.texts if t.get_text().startswith("c and d")][0]
    assert shared.get_color() not in (lines["c"].get_color(), lines["d"].get_color(), "black")
    assert_readable(fig)


def test_a_legend_of_long_names_takes_fewer_columns_and_stays_inside_the_figure():
    step = np.arange(10, 340, 10)
    names = [f"model.norm=pre,schedule.warmup_steps={w}" for w in (0, 50, 100, 150)]
    table = pd.concat(
        [pd.DataFrame({"step": step, "schedule": n, "lr": np.minimum(step / (w + 10), 1) * 2e-3})
         for n, w in zip(names, (0, 50, 100, 150), strict=True)]
    )  # fmt: skip
    fig = plot_schedules(table)
    assert legend_as_read(fig) == names
    assert_readable(fig)


def test_a_legend_of_many_long_names_grows_the_figure_not_over_the_plot():
    step = np.arange(10, 340, 10)
    names = [
        f"model.norm=pre,schedule.warmup_steps={w},optim.name=adamw,data.max_tokens=4096" for w in range(12)
    ]
    table = pd.concat(
        [pd.DataFrame({"step": step, "schedule": n, "lr": np.minimum(step / (10 * w + 10), 1) * 2e-3})
         for w, n in enumerate(names)]
    )  # fmt: skip
    fig = plot_schedules(table)
    fig.canvas.draw()
    legend, plot = fig.legends[0].get_window_extent(), fig.axes[0].get_window_extent()
    assert legend.y1 < plot.y0 and plot.height / fig.dpi > 2.5  # inches: the plot keeps its size
    assert_readable(fig)


def test_a_schedule_without_warmup_peaks_from_the_start():
    step = np.arange(20, 400, 20)
    table = pd.DataFrame({"step": step, "schedule": "no_warmup", "lr": 2e-3 * (1 - step / 400)})
    fig = plot_schedules(table)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no_warmup: peak 0.0019 from the start"]
    assert_readable(fig)


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


def test_metric_by_value_shows_each_seed_and_the_verdicts_intervals():
    runs = pd.DataFrame(
        [
            {"setting": s, "model.layers": n, "seed": seed, "bleu": mean + d}
            for s, n, mean in zip(
                SUMMARY["setting"], SUMMARY["model.layers"], SUMMARY["bleu_mean"], strict=True
            )
            for seed, d in ((1, -0.3), (2, 0.0), (3, 0.3))
        ]
    ).iloc[::-1]
    intervals = {"layers=1": (-3.8, -5.0, -2.6), "layers=6": (-0.2, -1.1, 0.7)}
    fig = plot_metric_by_value(runs, "model.layers", COLORS, intervals)
    values, forest = fig.axes
    assert [t.get_text() for t in values.get_xticklabels()] == ["1", "2", "3", "4", "6"]
    assert values.get_lines()[0].get_xdata().tolist() == [1, 2, 3, 4, 6]  # at the values, not in order
    uneven = runs.assign(**{"model.layers": runs["model.layers"].map({1: 0, 2: 10, 3: 20, 4: 30, 6: 4000})})
    spread = plot_metric_by_value(uneven, "model.layers", COLORS)
    assert spread.axes[0].get_lines()[0].get_xdata().tolist() == [0, 1, 2, 3, 4]  # 4,000 far off: in order
    plt.close(spread)
    tied = runs[runs["model.layers"] <= 2].assign(
        **{"model.layers": lambda t: (t["model.layers"] == 2).astype(object)}
    )
    switch = plot_metric_by_value(tied, "model.layers", COLORS)  # a switch (tied embeddings or not)
    assert [t.get_text() for t in switch.axes[0].get_xticklabels()] == ["False", "True"]
    plt.close(switch)
    assert values.get_lines()[0].get_ydata() == pytest.approx([24.1, 26.9, 27.9, 27.6, 27.7])  # the means
    dots = [line for line in values.get_lines() if line.get_marker() == "o"]
    assert len(dots) == 5 and all(len(d.get_xydata()) == 3 for d in dots)  # every seed
    assert [t.get_text() for t in forest.get_yticklabels()] == ["layers=1", "layers=6"]
    assert_readable(fig)


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
    assert top_left.get_title() == "baseline (seeds 1, 2, pooled): ECE 0.050"
    assert top_right.get_title() == "no_ls (seed 1): ECE 0.150"
    diagonal, curve = top_left.get_lines()
    assert diagonal.get_xydata().tolist() == [[0, 0], [1, 1]]
    assert curve.get_ydata().tolist() == pytest.approx([0.3, 0.7])  # seeds pooled by count
    assert top_left.get_legend() is None
    assert [p.get_height() for p in bottom_left.patches] == [0.5, 0.5]  # shares: 20 of 40 tokens each
    assert [p.get_height() for p in bottom_right.patches] == [0.5, 0.5]  # one seed's 1,000 tokens alike
    assert bottom_left.get_ylim() == bottom_right.get_ylim()  # one scale for both panels
    assert_readable(fig)
    alone = plot_reliability(  # one column (the arm not finished yet) under a long group name
        bins[bins["setting"] == "baseline"], {"baseline": 0.05}, palette(["baseline"]),
        title="no_label_smoothing: reliability on the test set",
    )  # fmt: skip
    assert_readable(alone)


def curves(rows_per_run: dict[tuple[str, str], tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for (run_id, setting), (nll, bleu) in rows_per_run.items():
        rows += [
            {"run_id": run_id, "setting": setting, "metric": "train/nll", "step": 10 * (i + 1), "value": v}
            for i, v in enumerate(nll)
        ]
        rows += [
            {"run_id": run_id, "setting": setting, "metric": "val/bleu", "step": 50 * (e + 1), "value": v,
             "epoch": e + 1.0}
            for e, v in enumerate(bleu)
        ]  # fmt: skip
    return pd.DataFrame(rows).assign(seed=lambda t: t["run_id"].str[-1].astype(int))


def test_training_curves_are_a_mean_with_the_seeds_range_and_mark_divergence():
    table = curves(
        {
            ("a1", "baseline"): ([6, 5, 4, 3, 2] * 2, [5.0, 18.5, 20.0]),
            ("a2", "baseline"): ([6, 5, 4, 3, 2] * 2, [7.0, 20.5, 22.0]),
            ("b1", "no_warmup"): ([6, 9], []),
            ("c1", "heads=8"): ([6, 5, 4, 3, 2] * 2, [6.0, 19.0, 21.5]),
            ("c2", "heads=8"): ([6, 5, 4, 3, 2] * 2, [7.0, 21.5, 23.0]),
        }
    )
    fig = plot_training_curves(table, palette(["baseline", "no_warmup", "heads=8"]), {"b1": 20})
    left, right, difference = fig.axes
    legend = legend_as_read(fig)
    assert legend == ["baseline", "no_warmup", "heads=8", "diverged", "90 % of best reached"]
    mean = [line for line in right.get_lines() if line.get_label() == "baseline"][0]
    assert mean.get_ydata().tolist() == [6.0, 19.5, 21.0]  # the mean of the seeds
    stars = [line for line in right.get_lines() if line.get_marker() == "*" and len(line.get_xydata())]
    assert stars[0].get_xydata().tolist() == [[100, 19.5]]  # 19.5 >= 0.9 * 21
    assert not any(star.get_clip_on() for star in stars)  # a star on the last validation is not cut
    (arm,) = [line for line in right.get_lines() if line.get_label() == "heads=8"]
    assert mean.get_linestyle() == "--" and arm.get_linestyle() == "-"
    assert mean.get_zorder() > arm.get_zorder()  # the baseline dashed over the arms, never under one
    crosses = [line for line in left.get_lines() if line.get_marker() == "x" and len(line.get_xydata())]
    assert crosses[0].get_xydata().tolist() == [[20, 9]]
    assert left.collections and right.collections  # the seeds' range, shaded
    # each arm against the baseline at the same seed and epoch: the mean of (+1, 0), (+0.5, +1), (+1.5, +1)
    (heads,) = [line for line in difference.get_lines() if line.get_label() == "heads=8"]
    assert heads.get_xydata().tolist() == [[50, 0.5], [100, 0.75], [150, 1.25]]  # at the middle's steps
    assert difference.get_xlim() == right.get_xlim()
    assert fig.texts[0].get_text() == "Training" and left.get_title() == "training NLL (mean of seeds)"
    assert right.get_xlim()[0] > 0  # the validation axis starts where its points do
    assert_readable(fig)


def test_plain_ticks_print_numbers_as_the_tables_do():
    fig, ax = plt.subplots()
    ax.plot([-25, 3e-4, 12_000], [0, 1, 2])
    plain_ticks(ax.xaxis)
    label = ax.xaxis.get_major_formatter()
    assert [label(v) for v in (-25, -0.5, 3e-4, 12_000)] == ["−25", "−0.5", "0.0003", "12,000"]
    plt.close(fig)


def test_a_legend_beneath_reads_left_to_right_then_row_by_row():
    fig, ax = plt.subplots(figsize=(15, 4.9))
    names = [*SETTINGS, "90 % of best reached"]  # six entries, five a row
    for name in names:
        ax.plot([0, 1], [0, 1], label=name)
    legend_below(fig, [ax], columns=5)
    assert legend_as_read(fig) == names  # not "baseline" alone above "layers=1" in the first column
    assert len({round(t.get_window_extent().y0) for t in fig.legends[0].get_texts()}) == 2
    plt.close(fig)


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
    assert_readable(fig)


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


def test_a_run_of_its_own_has_no_panel_against_a_baseline():
    table = curves({("a1", "baseline"): ([6, 5, 4, 3, 2] * 2, [5.0, 18.5, 20.0])})
    fig = plot_training_curves(table, palette(["baseline"]))
    assert len(fig.axes) == 2
    assert_readable(fig)


def test_a_validation_just_before_the_last_is_drawn_once_and_two_validations_get_no_star():
    """The budget ends 2 updates after an epoch's end: both were validated; the curves end in the
    last one, not in two points on top of each other. With two validations per run the star
    (90 % of the best) would always sit on the last, so none is drawn."""
    table = curves({("a1", "baseline"): ([6, 5, 4], [5.0, 9.0, 12.0]), ("b1", "arm"): ([6, 5], [4.0, 8.0])})
    ends = pd.DataFrame(
        [{"run_id": r, "setting": s, "metric": "val/bleu", "step": 152, "value": v, "epoch": 3.04, "seed": 1}
         for r, s, v in (("a1", "baseline", 12.5), ("b1", "arm", 8.5))]
    )  # fmt: skip
    fig = plot_training_curves(pd.concat([table, ends]), palette(["baseline", "arm"]))
    _, middle, difference = fig.axes
    (base,) = [line for line in middle.get_lines() if line.get_label() == "baseline"]
    assert base.get_xdata().tolist() == [50, 100, 152] and base.get_ydata().tolist() == [5.0, 9.0, 12.5]
    (arm,) = [line for line in difference.get_lines() if line.get_label() == "arm"]
    assert arm.get_xdata().tolist() == [50, 100, 152]  # the arm's last against the baseline's last
    two = curves({("a1", "baseline"): ([6, 5], [5.0, 9.0]), ("b1", "arm"): ([6, 5], [4.0, 8.0])})
    fig = plot_training_curves(two, palette(["baseline", "arm"]))
    assert "90 % of best reached" not in [t.get_text() for t in fig.legends[0].get_texts()]
    assert_readable(fig)


def test_the_training_caption_names_the_panels_drawn_and_speaks_of_one_run_where_there_was_one():
    both = curves({("a1", "baseline"): ([6, 5], [5.0, 9.0]), ("b1", "arm"): ([6, 5], [4.0, 8.0])})
    caption = training_caption("seed 1", both)
    assert "Middle: validation BLEU" in caption and "Right: each arm's validation BLEU minus" in caption
    assert "each run's moving average" in caption and "range" not in caption
    alone = curves({("a1", "baseline"): ([6, 5], [5.0, 9.0]), ("a2", "baseline"): ([6, 4], [5.0, 8.0])})
    caption = training_caption("seeds 1, 2", alone)
    assert "Right: validation BLEU" in caption and "Middle" not in caption and "minus" not in caption
    assert "the seeds' range shaded" in caption
    assert (
        plot_training_curves(alone, palette(["baseline"])).axes[0].get_title()
        == "training NLL (mean of seeds)"
    )
    assert plot_training_curves(both, palette(["baseline", "arm"])).axes[0].get_title() == "training NLL"


def test_the_captions_name_each_settings_seeds_where_they_differ():
    members = pd.DataFrame(
        [
            {"setting": s, "seed": seed, "status": "finished"}
            for s in ("baseline", "a", "b")
            for seed in (1, 2, 3)
        ]
    )
    assert seeds_text(members) == "seeds 1, 2, 3"
    members.loc[(members["setting"] == "b") & (members["seed"] == 3), "status"] = "running"
    members.loc[members["setting"] == "a", "status"] = "failed"
    assert seeds_text(members) == "seeds 1, 2, 3; a: no finished seed; b: seeds 1, 2"
    members.loc[(members["setting"] == "a") & (members["seed"] == 1), "status"] = "finished"
    assert (
        seeds_text(members) == "seeds 1, 2, 3; a: seed 1; b: seeds 1, 2"
    )  # none shared: the baseline's lead


def test_a_reference_schedule_takes_the_colour_of_the_setting_that_trains_with_it():
    members = pd.DataFrame(
        {
            "setting": ["noam", "baseline", "linear"],
            "schedule.name": ["noam", "warmup_cosine", "warmup_linear"],
        }
    )
    colors = palette(["baseline", "noam", "linear"])
    got = reference_colours(["noam", "warmup_cosine", "warmup_linear", "inverse_sqrt"], members, colors)
    assert got["warmup_cosine"] == colors["baseline"] and got["noam"] == colors["noam"]
    assert got["warmup_linear"] == colors["linear"]
    assert got["inverse_sqrt"] not in colors.values()  # used by no setting: a colour of its own
