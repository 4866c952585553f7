"""The training figure of a group or a run: training NLL, validation BLEU and each arm's
validation BLEU against the baseline's at the same seed, over updates (conventions:
:mod:`ablab.analysis.figures`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablab.analysis.figures import BASELINE_COLOUR, legend_below, plain_ticks
from ablab.trainer.tracking.record import BASELINE

SMOOTHING = 9
"""Logged points in the centred moving average of a training curve."""


BASELINE_LINE = {"linestyle": (0, (4, 1.5)), "zorder": 3}
"""The baseline's curves: dashed and drawn over the arms', so an arm that follows it closely
still shows beneath it, and the baseline is never hidden under one."""


def _band(curves: pd.DataFrame, metric: str, smooth: int) -> pd.DataFrame:
    """Per setting and step: the mean over seeds of ``metric`` (each seed's curve smoothed by a
    centred moving average of ``smooth`` points first), the seeds' range, and the raw mean."""
    rows = curves[curves["metric"] == metric].dropna(subset=["step"]).sort_values("step")
    rows = rows.assign(step=rows["step"].astype(float), value=rows["value"].astype(float))
    if rows.empty:
        return pd.DataFrame(columns=["setting", "step", "mean", "low", "high", "raw"])
    rows = rows.assign(
        smooth=rows.groupby("run_id")["value"].transform(
            lambda v: v.rolling(smooth, center=True, min_periods=1).mean()
        )
    )
    return (
        rows.groupby(["setting", "step"], sort=False)
        .agg(mean=("smooth", "mean"), low=("smooth", "min"), high=("smooth", "max"), raw=("value", "mean"))
        .reset_index()
    )


def one_run_per_setting(curves: pd.DataFrame) -> bool:
    """Each setting's curves come from a single run (the training figure and its caption then
    speak of a run, not of a mean over seeds)."""
    return curves.groupby("setting")["run_id"].nunique().max() <= 1


def against_baseline(settings) -> bool:
    """The training figure gets its panel of differences from the baseline: there are a
    baseline and an arm."""
    settings = set(settings)
    return BASELINE in settings and len(settings) > 1


def plot_training_curves(
    curves: pd.DataFrame, colors: dict, diverged: dict[str, int] | None = None, title: str = "Training"
) -> Figure:
    """Left: training NLL per target token (``train/nll``, without the smoothing term, so arms
    with and without label smoothing compare), mean over seeds of each seed's moving average
    with the seeds' range as a band and the unsmoothed mean faint. Middle: validation BLEU at
    each validation, mean over seeds with their range; a star where a setting first reached
    90 % of its best (drawn over the frame where it sits on the last validation). The baseline
    dashed, over the arms (:data:`BASELINE_LINE`). Right: each arm's validation BLEU minus the
    baseline's at the same seed and epoch, mean over seeds with their range (curves that coincide
    in the middle part here), at the arm's update step, as the middle panel; drawn where there are
    a baseline and an arm. An x where a run diverged; ``title`` above the panels; one legend
    beneath."""
    sns.set_theme(style="whitegrid")
    settings = sorted(dict.fromkeys(curves["setting"]), key=lambda s: s != BASELINE)  # the baseline first
    compared = against_baseline(settings)
    fig, axes = plt.subplots(
        1, 3 if compared else 2, figsize=(15, 4.9) if compared else (12, 4.9),
        gridspec_kw={"width_ratios": [4, 4, 3] if compared else [1, 1]},
    )  # fmt: skip
    left, middle = axes[:2]
    train = _band(curves, "train/nll", SMOOTHING)
    if train.empty:  # an older store's runs logged only the smoothed loss
        train = _band(curves, "train/loss", SMOOTHING)
    validation = _apart(curves[curves["metric"] == "val/bleu"])
    val = _band(validation, "val/bleu", 1)
    difference = _difference_from_baseline(validation)
    for setting in settings:
        color = colors[setting]
        line = BASELINE_LINE if setting == BASELINE else {}
        t = train[train["setting"] == setting]
        if len(t):
            left.plot(t["step"], t["raw"], color=color, linewidth=0.6, alpha=0.25)
            left.fill_between(t["step"], t["low"], t["high"], color=color, alpha=0.18, linewidth=0)
            left.plot(t["step"], t["mean"], color=color, linewidth=1.6, label=setting, **line)
        v = val[val["setting"] == setting]
        if len(v):
            middle.fill_between(v["step"], v["low"], v["high"], color=color, alpha=0.18, linewidth=0)
            middle.plot(
                v["step"],
                v["mean"],
                marker="o",
                color=color,
                linewidth=1.4,
                markersize=3,
                label=setting,
                **line,
            )
            if len(v) >= 3:  # with two validations the star would always sit on the last
                reached = v[v["mean"] >= 0.9 * v["mean"].max()].iloc[0]
                middle.plot(
                    reached["step"], reached["mean"], "*", color=color, markersize=13,
                    markeredgecolor="white", clip_on=False, zorder=4,
                )  # fmt: skip
        d = difference[difference["setting"] == setting]
        if compared and len(d):
            right = axes[2]
            right.fill_between(d["step"], d["low"], d["high"], color=color, alpha=0.18, linewidth=0)
            right.plot(d["step"], d["mean"], "o-", color=color, linewidth=1.4, markersize=3, label=setting)
    for run_id, step in (diverged or {}).items():
        run = curves[(curves["run_id"] == run_id) & (curves["metric"].isin(["train/nll", "train/loss"]))]
        if len(run):
            last = run.sort_values("step")["value"].iloc[-1]
            left.plot(step, last, "x", color="red", markersize=11, markeredgewidth=2)
    if diverged:
        left.plot([], [], "x", color="red", markeredgewidth=2, label="diverged")
    if val.groupby("setting").size().max() >= 3:
        middle.plot([], [], "*", color="grey", markersize=11, label="90 % of best reached")
    nll = "training NLL" if one_run_per_setting(curves) else "training NLL (mean of seeds)"
    left.set(xlabel="update step", ylabel="training NLL per target token", title=nll)
    middle.set(xlabel="update step", ylabel="validation BLEU (greedy)", title="validation")
    if compared:
        right = axes[2]
        right.axhline(0, color=BASELINE_COLOUR, linewidth=1)
        against = "validation, against the baseline"
        right.set(xlabel="update step", ylabel="BLEU − baseline's (same seed)", title=against)
    if len(train):
        top, bottom = np.nanpercentile(train["high"], 98), min(train["low"].min(), train["raw"].min())
        left.set_ylim(max(0.0, bottom - 0.1), top + 0.15 * (top - bottom))
        left.set_xlim(train["step"].min(), train["step"].max())
    if len(val):
        span = val["step"].max() - val["step"].min()
        for ax in axes[1:]:  # the middle panel and the one against the baseline: one update axis
            ax.set_xlim(val["step"].min() - 0.04 * span, val["step"].max() + 0.04 * span)
    for ax in axes:
        plain_ticks(ax.xaxis)
        ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    fig.suptitle(title)
    legend_below(fig, axes, columns=5)
    return fig


def _apart(validation: pd.DataFrame) -> pd.DataFrame:
    """Each run's validations without one that the next follows within a tenth of an epoch (an
    epoch's end a few updates before the budget's end): the later one is kept, so a curve does
    not end in two points on top of each other."""
    if "epoch" not in validation:  # a store that logged no epochs
        return validation
    kept = []
    for _, run in validation.sort_values("step").groupby("run_id", sort=False):
        epochs = pd.to_numeric(run["epoch"], errors="coerce")
        kept.append(run[~(epochs.diff().shift(-1) < 0.1)])
    return pd.concat(kept) if kept else validation


def _difference_from_baseline(validation: pd.DataFrame) -> pd.DataFrame:
    """Per arm and epoch: the mean over seeds of its value minus the baseline's at the same seed
    and epoch, the seeds' range (seeds without a baseline value at that epoch are left out), and
    the arm's mean update step there."""
    base = validation[validation["setting"] == BASELINE][["seed", "epoch", "value"]]
    arms = validation[validation["setting"] != BASELINE]
    paired = arms.merge(base, on=["seed", "epoch"], suffixes=("", "_base"))
    if paired.empty:
        return pd.DataFrame(columns=["setting", "epoch", "mean", "low", "high", "step"])
    paired = paired.assign(d=paired["value"] - paired["value_base"])
    return (
        paired.groupby(["setting", "epoch"], sort=False)
        .agg(mean=("d", "mean"), low=("d", "min"), high=("d", "max"), step=("step", "mean"))
        .reset_index()
        .sort_values("epoch")
    )
