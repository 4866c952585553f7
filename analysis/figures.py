"""Figures from tidy tables (pandas in, matplotlib ``Figure`` out); nothing here trains or tracks.

Conventions every figure keeps: one colour per setting, the same in every figure of a report
(:func:`palette`; the baseline is always black); parameter counts in millions; panels that are
compared share their y-scale; labels beside points are placed clear of each other and of the
axes' edges (:mod:`ablab.analysis.placement`); curves over seeds are the mean with a band (the seeds'
range), so that one setting is one line.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from ablab.analysis.placement import place_labels  # noqa: E402
from ablab.trainer.tracking.record import BASELINE  # noqa: E402

SMOOTHING = 9
"""Logged points in the centred moving average of a training curve."""


def palette(settings) -> dict[str, tuple]:
    """Setting -> colour: black for the baseline, the others in order from a qualitative palette."""
    colours = iter(sns.color_palette("tab10", 10) * 10)
    out = {}
    for setting in dict.fromkeys(settings):
        out[setting] = (0.1, 0.1, 0.1) if setting == BASELINE else next(colours)
    return out


def _millions(value: float, _=None) -> str:
    return f"{value / 1e6:g} M"


def plot_schedules(table: pd.DataFrame, title: str = "Learning-rate schedules", colors=None) -> Figure:
    """Learning rate against update step, one line per schedule, each peak marked and labelled.

    ``table`` has columns ``step``, ``schedule``, ``lr``.
    """
    sns.set_theme(style="whitegrid")
    table = table.reset_index(drop=True)
    colors = colors or palette(table["schedule"])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, line in table.groupby("schedule", sort=False):
        ax.plot(line["step"], line["lr"], color=colors[name], linewidth=1.6, label=name)
    peaks = table.loc[table.groupby("schedule", sort=False)["lr"].idxmax()]
    ax.set(xlabel="update step", ylabel="learning rate", title=title)
    ax.set_ylim(0, table["lr"].max() * 1.35)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    ax.plot(peaks["step"], peaks["lr"], "o", color="black", markersize=4)
    labels = [f"{r.schedule}: {r.lr:.2e} at {int(r.step):,}" for r in peaks.itertuples()]
    place_labels(
        ax,
        list(zip(peaks["step"], peaks["lr"], strict=True)),
        labels,
        [colors[s] for s in peaks["schedule"]],
        8,
    )
    return fig


def plot_metric_vs_params(
    summary: pd.DataFrame, colors: dict, metric: str = "bleu", title: str = ""
) -> Figure:
    """``<metric>_mean`` (± sd across seeds) against ``params_mean`` in millions, each point
    labelled by its setting; ``summary`` as :func:`ablab.analysis.stats.aggregate` makes it."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    data = summary.dropna(subset=[f"{metric}_mean", "params_mean"]).sort_values("params_mean")
    for row in data.to_dict("records"):
        ax.errorbar(
            row["params_mean"],
            row[f"{metric}_mean"],
            yerr=_sd(row.get(f"{metric}_sd")),
            fmt="o",
            color=colors[row["setting"]],
            capsize=4,
        )
    low, high = data["params_mean"].min(), data["params_mean"].max()
    if high / low > 8:
        ax.set_xscale("log")
    ax.set_xlim(
        low / 1.25 if high / low > 8 else low - 0.15 * (high - low),
        high * 1.25 if high / low > 8 else high + 0.15 * (high - low),
    )
    ax.xaxis.set_major_formatter(FuncFormatter(_millions))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    sd = data[f"{metric}_sd"].fillna(0.0) if f"{metric}_sd" in data else 0.0
    low, high = (data[f"{metric}_mean"] - sd).min(), (data[f"{metric}_mean"] + sd).max()
    margin = max((high - low) * 0.15, 0.5)  # every error bar whole, caps included
    ax.set_ylim(low - margin, high + margin)
    ax.set(xlabel="parameters", ylabel=f"{metric.upper()} (mean ± sd over seeds)", title=title)
    fig.tight_layout()
    place_labels(
        ax,
        list(zip(data["params_mean"], data[f"{metric}_mean"], strict=True)),
        list(data["setting"]),
        [colors[s] for s in data["setting"]],
    )
    return fig


def plot_metric_by_value(
    summary: pd.DataFrame, key: str, colors: dict, metric: str = "bleu", title: str = ""
) -> Figure:
    """``<metric>_mean`` (± sd across seeds) against the values of one config key, e.g. heads."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6, 4))
    data = summary.dropna(subset=[f"{metric}_mean"]).sort_values(key)
    positions = list(range(len(data)))
    ax.plot(positions, data[f"{metric}_mean"], "-", color="grey", linewidth=1)
    for x, row in zip(positions, data.to_dict("records"), strict=True):
        ax.errorbar(
            x,
            row[f"{metric}_mean"],
            yerr=_sd(row.get(f"{metric}_sd")),
            fmt="o",
            capsize=4,
            color=colors[row["setting"]],
        )
    ax.set_xticks(positions, [f"{v:g}" if isinstance(v, float) else str(v) for v in data[key]])
    ax.set(xlabel=key, ylabel=f"{metric.upper()} (mean ± sd over seeds)", title=title or f"{metric} by {key}")
    fig.tight_layout()
    return fig


def plot_interaction(
    cells: pd.DataFrame, x: str, line: str, panel: str | None, ylabel: str, title: str
) -> Figure:
    """A factorial design's interaction plot: the metric's cell ``mean`` with its interval
    (``low``, ``high``) against the levels of factor ``x``, one line per level of factor
    ``line``, a panel per level combination of the others (``panel``); parallel lines mean no
    interaction. The baseline's cell is ringed. Panels share their y-scale."""
    sns.set_theme(style="whitegrid")
    panels = list(dict.fromkeys(cells[panel])) if panel else [None]
    width = max(7.5, 1 + 4.5 * len(panels))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.5), sharey=True, squeeze=False)
    levels = list(dict.fromkeys(cells[x]))
    colours = dict(zip(dict.fromkeys(cells[line]), sns.color_palette("colorblind", 10) * 10, strict=False))
    for ax, name in zip(axes[0], panels, strict=True):
        shown = cells if name is None else cells[cells[panel] == name]
        for level, rows in shown.groupby(line, sort=False):
            rows = rows.set_index(x).reindex(levels).reset_index()
            positions = np.arange(len(levels)) + (list(colours).index(level) - (len(colours) - 1) / 2) * 0.06
            ax.plot(positions, rows["mean"], "-o", color=colours[level], label=f"{line} = {level}")
            ax.errorbar(
                positions,
                rows["mean"],
                yerr=[rows["mean"] - rows["low"], rows["high"] - rows["mean"]],
                fmt="none",
                ecolor=colours[level],
                capsize=4,
            )
            ringed = rows["baseline"].fillna(False).astype(bool).to_numpy()
            ax.plot(positions[ringed], rows["mean"][ringed], "o", markersize=13, mfc="none", color="black")
        ax.set_xticks(range(len(levels)), levels)
        ax.set(xlabel=x, title=name or "")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=9, loc="best")
    fig.suptitle(textwrap.fill(title, int(width * 9)))
    fig.tight_layout()
    return fig


def _sd(value) -> float:
    return 0.0 if value is None or pd.isna(value) else float(value)


def plot_reliability(
    bins: pd.DataFrame, ece: dict[str, float], colors: dict, title: str = "Reliability"
) -> Figure:
    """One column per setting (``bins`` has ``setting, seed, bin, lower, upper, count,
    confidence, accuracy``; seeds pooled by count): accuracy per bin against its mean confidence
    with the diagonal, ECE in the legend; beneath, the tokens per bin on one shared scale."""
    sns.set_theme(style="whitegrid")
    settings = list(dict.fromkeys(bins["setting"]))
    fig, axes = plt.subplots(
        2,
        len(settings),
        figsize=(4.4 * len(settings), 6),
        squeeze=False,
        sharey="row",
        gridspec_kw={"height_ratios": [3, 1.2]},
    )
    for col, setting in enumerate(settings):
        rows = bins[bins["setting"] == setting]
        pooled = _pool_bins(rows)
        seeds = ", ".join(str(s) for s in sorted(set(rows["seed"])))
        top, bottom = axes[0, col], axes[1, col]
        top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
        filled = pooled[pooled["count"] > 0]
        label = f"ECE {ece.get(setting, float('nan')):.3f}"
        top.plot(filled["confidence"], filled["accuracy"], "o-", color=colors[setting], label=label)
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy" if col == 0 else "")
        pooled_seeds = f"seeds {seeds}, pooled" if "," in seeds else f"seed {seeds}"
        top.set_title(f"{setting} ({pooled_seeds})", fontsize=10)
        top.legend(fontsize=8, loc="upper left")
        width = pooled["upper"] - pooled["lower"]
        bottom.bar(
            pooled["lower"],
            pooled["count"],
            width=width,
            align="edge",
            edgecolor="white",
            color=colors[setting],
        )
        bottom.set(xlim=(0, 1), xlabel="confidence (max probability)", ylabel="tokens" if col == 0 else "")
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _pool_bins(bins: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled per bin: counts summed, confidence and accuracy count-weighted."""
    weighted = bins.assign(
        c=bins["confidence"].fillna(0) * bins["count"], a=bins["accuracy"].fillna(0) * bins["count"]
    )
    pooled = weighted.groupby("bin").agg(
        lower=("lower", "first"),
        upper=("upper", "first"),
        count=("count", "sum"),
        c=("c", "sum"),
        a=("a", "sum"),
    )
    safe = pooled["count"].where(pooled["count"] > 0)
    return pooled.assign(confidence=pooled["c"] / safe, accuracy=pooled["a"] / safe).reset_index()


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


def plot_training_curves(
    curves: pd.DataFrame, colors: dict, diverged: dict[str, int] | None = None, title: str = "Training"
) -> Figure:
    """Left: training NLL per target token (``train/nll``, without the smoothing term, so arms
    with and without label smoothing compare), mean over seeds of each seed's moving average
    with the seeds' range as a band and the unsmoothed mean faint. Right: validation BLEU at
    each validation, mean over seeds with their range; a star where a setting first reached
    90 % of its best. Both against the update step; an x where a run diverged."""
    sns.set_theme(style="whitegrid")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    train = _band(curves, "train/nll", SMOOTHING)
    if train.empty:  # an older store's runs logged only the smoothed loss
        train = _band(curves, "train/loss", SMOOTHING)
    val = _band(curves, "val/bleu", 1)
    for setting in dict.fromkeys(curves["setting"]):
        color = colors[setting]
        t = train[train["setting"] == setting]
        if len(t):
            left.plot(t["step"], t["raw"], color=color, linewidth=0.6, alpha=0.25)
            left.fill_between(t["step"], t["low"], t["high"], color=color, alpha=0.18, linewidth=0)
            left.plot(t["step"], t["mean"], color=color, linewidth=1.6, label=setting)
        v = val[val["setting"] == setting]
        if len(v):
            right.fill_between(v["step"], v["low"], v["high"], color=color, alpha=0.18, linewidth=0)
            right.plot(v["step"], v["mean"], "o-", color=color, linewidth=1.4, markersize=3, label=setting)
            reached = v[v["mean"] >= 0.9 * v["mean"].max()].iloc[0]
            right.plot(
                reached["step"], reached["mean"], "*", color=color, markersize=13, markeredgecolor="white"
            )
    for run_id, step in (diverged or {}).items():
        run = curves[(curves["run_id"] == run_id) & (curves["metric"].isin(["train/nll", "train/loss"]))]
        if len(run):
            left.plot(
                step,
                run.sort_values("step")["value"].iloc[-1],
                "x",
                color="red",
                markersize=11,
                markeredgewidth=2,
            )
    if diverged:
        left.plot([], [], "x", color="red", markeredgewidth=2, label="diverged")
    right.plot([], [], "*", color="grey", markersize=11, label="90 % of best reached")
    left.set(
        xlabel="update step",
        ylabel="training NLL per target token",
        title="training (mean of seeds, range shaded)",
    )
    right.set(xlabel="update step", ylabel="validation BLEU (greedy)", title="validation")
    if len(train):
        top, bottom = np.nanpercentile(train["high"], 98), min(train["low"].min(), train["raw"].min())
        left.set_ylim(max(0.0, bottom - 0.1), top + 0.15 * (top - bottom))
    for ax in (left, right):
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    for ax, where in ((left, "upper right"), (right, "lower right")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc=where)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_attention(records: dict[str, dict], title: str = "Cross-attention") -> Figure:
    """Heatmaps of the attention of the same sentence, one panel per model: a Transformer's
    cross-attention (last layer, averaged over heads) or a seq2seq model's attention; target
    tokens down, source tokens across. ``records`` maps a label to an attention record."""
    sns.set_theme(style="white")
    first = records[next(iter(records))]
    width = max(5.0, 0.28 * len(first["source_tokens"]) + 2)
    fig, axes = plt.subplots(1, len(records), figsize=(width * len(records), width * 0.95), squeeze=False)
    for ax, (label, record) in zip(axes[0], records.items(), strict=True):
        weights, kind = attention_matrix(record)
        sns.heatmap(
            weights,
            ax=ax,
            cmap="viridis",
            vmin=0,
            vmax=1,
            xticklabels=record["source_tokens"],
            yticklabels=record["target_tokens"],
            cbar=ax is axes[0][-1],
        )
        ax.set(xlabel="source", ylabel="target")
        ax.set_title(f"{label}\n({kind})", fontsize=10)
        ax.tick_params(axis="x", labelrotation=90, labelsize=8)
        ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    fig.suptitle(f"{title}\n“{first['source']}”", fontsize=10)
    fig.tight_layout()
    return fig


def attention_matrix(record: dict):
    """(target x source) weights: the last layer's cross-attention averaged over heads for a
    Transformer (maps['cross'] is layers x heads x T x S), the attention of a seq2seq model."""
    maps = record["maps"]
    if "cross" in maps:
        return np.asarray(maps["cross"])[-1].mean(axis=0), "last layer, mean of heads"
    return np.asarray(maps["attention"]), "additive attention"
