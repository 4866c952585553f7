"""Figures from tidy tables (pandas in, matplotlib ``Figure`` out); nothing here trains or tracks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def plot_schedules(table: pd.DataFrame, title: str = "Learning-rate schedules") -> Figure:
    """Learning rate against update step, one line per schedule, each peak marked and labelled.

    ``table`` has columns ``step``, ``schedule``, ``lr``.
    """
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sns.lineplot(data=table, x="step", y="lr", hue="schedule", ax=ax, linewidth=1.6)
    colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
    peaks = table.loc[table.groupby("schedule", sort=False)["lr"].idxmax()]
    for (step, lr), group in peaks.groupby(["step", "lr"], sort=False):  # shared peaks, one label
        names = ", ".join(group["schedule"])
        ax.plot(step, lr, "o", color=colors.get(group["schedule"].iloc[0], "black"), markersize=6)
        ax.annotate(
            f"{names}: peak {lr:.2e}\nat step {int(step):,}",
            (step, lr),
            textcoords="offset points",
            xytext=(8, 4),
            fontsize=8,
        )
    ax.set(xlabel="update step", ylabel="learning rate", title=title)
    ax.set_ylim(top=table["lr"].max() * 1.2)  # room for the highest peak's label under the title
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return fig


def plot_metric_vs_params(
    summary: pd.DataFrame, metric: str = "bleu", label: str = "setting", title: str = ""
) -> Figure:
    """``<metric>_mean`` against ``params_mean`` (log scale), error bars of one sd across seeds,
    each point labelled by its setting; ``summary`` as :func:`analysis.stats.aggregate` makes it."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    data = summary.dropna(subset=[f"{metric}_mean", "params_mean"])
    for i, row in enumerate(data.itertuples(index=False)):
        row = row._asdict()
        color = sns.color_palette()[i % 10]
        ax.errorbar(
            row["params_mean"],
            row[f"{metric}_mean"],
            yerr=_sd(row.get(f"{metric}_sd")),
            fmt="o",
            color=color,
            capsize=4,
            label=str(row[label]),
        )
        ax.annotate(
            str(row[label]),
            (row["params_mean"], row[f"{metric}_mean"]),
            xytext=(6, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="parameters",
        ylabel=f"{metric} (mean ± sd over seeds)",
        title=title or f"{metric} against size",
    )
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_metric_by_value(summary: pd.DataFrame, key: str, metric: str = "bleu", title: str = "") -> Figure:
    """``<metric>_mean`` (± sd across seeds) against the values of one config key, e.g. heads."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6, 4))
    data = summary.dropna(subset=[f"{metric}_mean"]).sort_values(key)
    positions = range(len(data))
    ax.errorbar(
        list(positions),
        data[f"{metric}_mean"],
        yerr=[_sd(v) for v in data.get(f"{metric}_sd", [None] * len(data))],
        fmt="o-",
        capsize=4,
    )
    ax.set_xticks(list(positions), [f"{v:g}" if isinstance(v, float) else str(v) for v in data[key]])
    ax.set(xlabel=key, ylabel=f"{metric} (mean ± sd over seeds)", title=title or f"{metric} by {key}")
    fig.tight_layout()
    return fig


def _sd(value) -> float:
    return 0.0 if value is None or pd.isna(value) else float(value)


def plot_reliability(bins: pd.DataFrame, ece: dict[str, float], title: str = "Reliability") -> Figure:
    """One column per setting (``bins`` has ``setting, bin, lower, upper, count, confidence,
    accuracy``, seeds pooled by count): accuracy per bin against its mean confidence with the
    diagonal, ECE in the legend, and the bin counts beneath."""
    sns.set_theme(style="whitegrid")
    settings = list(dict.fromkeys(bins["setting"]))
    fig, axes = plt.subplots(
        2,
        len(settings),
        figsize=(4.2 * len(settings), 5.5),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for col, setting in enumerate(settings):
        pooled = _pool_bins(bins[bins["setting"] == setting])
        top, bottom = axes[0, col], axes[1, col]
        top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
        filled = pooled[pooled["count"] > 0]
        top.plot(
            filled["confidence"],
            filled["accuracy"],
            "o-",
            label=f"{setting}: ECE {ece.get(setting, float('nan')):.3f}",
        )
        top.set(xlim=(0, 1), ylim=(0, 1), xlabel="", ylabel="accuracy" if col == 0 else "", title=setting)
        top.legend(fontsize=8, loc="upper left")
        width = pooled["upper"] - pooled["lower"]
        bottom.bar(pooled["lower"], pooled["count"], width=width, align="edge", edgecolor="white")
        bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="tokens" if col == 0 else "")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _pool_bins(bins: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled per bin: counts summed, confidence and accuracy count-weighted."""
    weighted = bins.assign(c=bins["confidence"] * bins["count"], a=bins["accuracy"] * bins["count"])
    pooled = weighted.groupby("bin").agg(
        lower=("lower", "first"),
        upper=("upper", "first"),
        count=("count", "sum"),
        c=("c", "sum"),
        a=("a", "sum"),
    )
    safe = pooled["count"].where(pooled["count"] > 0)
    return pooled.assign(confidence=pooled["c"] / safe, accuracy=pooled["a"] / safe).reset_index()


def plot_loss_curves(curves: pd.DataFrame, diverged: dict[str, int], title: str = "Loss") -> Figure:
    """Training loss per update and validation loss per epoch (at its update), one colour per
    setting, seeds as separate thin lines; a run that diverged is marked with an x where it did.
    ``diverged`` maps run id to the step of divergence."""
    sns.set_theme(style="whitegrid")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    palette = dict(zip(dict.fromkeys(curves["setting"]), sns.color_palette(n_colors=10) * 10, strict=False))
    for (setting, run_id), run in curves.groupby(["setting", "run_id"], sort=False):
        color = palette[setting]
        train = run[run["metric"] == "train_loss"].sort_values("step")
        val = run[run["metric"] == "val_loss"].dropna(subset=["step"]).sort_values("step")
        first = run_id == curves[curves["setting"] == setting]["run_id"].iloc[0]
        left.plot(train["step"], train["value"], color=color, linewidth=1, label=setting if first else None)
        right.plot(
            val["step"], val["value"], "o-", color=color, linewidth=1, label=setting if first else None
        )
        if run_id in diverged and len(train):
            last = train.iloc[-1]
            left.plot(diverged[run_id], last["value"], "x", color="red", markersize=12, markeredgewidth=2)
            left.annotate(f"diverged at {diverged[run_id]}", (diverged[run_id], last["value"]), fontsize=8)
    left.set(xlabel="update step", ylabel="training loss (label-smoothed)", title="training")
    right.set(xlabel="update step", ylabel="validation loss (NLL per token)", title="validation")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_val_bleu(curves: pd.DataFrame, title: str = "Validation BLEU per epoch") -> Figure:
    """Validation BLEU per epoch, one line per setting (mean over seeds), with the first epoch
    at which it reached 90 % of its best marked."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    val = curves[curves["metric"] == "val_bleu"]
    mean = val.groupby(["setting", "epoch"], sort=False)["value"].mean().reset_index()
    for setting, line in mean.groupby("setting", sort=False):
        line = line.sort_values("epoch")
        (drawn,) = ax.plot(line["epoch"], line["value"], "o-", linewidth=1.4, label=setting)
        best = line["value"].max()
        reached = line[line["value"] >= 0.9 * best].iloc[0]
        ax.plot(reached["epoch"], reached["value"], "*", color=drawn.get_color(), markersize=14)
    ax.plot([], [], "*", color="black", label="90 % of best reached")
    ax.set(xlabel="epoch", ylabel="validation BLEU (greedy)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_attention(records: dict[str, dict], title: str = "Cross-attention") -> Figure:
    """Heatmaps of the attention of the same sentence, one panel per model: a Transformer's
    cross-attention (last layer, averaged over heads) or a seq2seq model's attention; target
    tokens down, source tokens across. ``records`` maps a label to an attention record."""
    sns.set_theme(style="white")
    fig, axes = plt.subplots(1, len(records), figsize=(6 * len(records), 5.5), squeeze=False)
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
        ax.set(xlabel="source", ylabel="target", title=f"{label} ({kind})")
        ax.tick_params(axis="x", labelrotation=90, labelsize=8)
        ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    fig.suptitle(f"{title}: {records[next(iter(records))]['source']}", fontsize=10)
    fig.tight_layout()
    return fig


def attention_matrix(record: dict):
    """(target x source) weights: the last layer's cross-attention averaged over heads for a
    Transformer (maps['cross'] is layers x heads x T x S), the attention of a seq2seq model."""
    maps = record["maps"]
    if "cross" in maps:
        return np.asarray(maps["cross"])[-1].mean(axis=0), "last layer, mean of heads"
    return np.asarray(maps["attention"]), "additive attention"
