"""Figures of what the models do, token by token: reliability diagrams (is a model's confidence
its accuracy?) and attention maps (where does it look?). The conventions of
:mod:`ablab.analysis.figures` hold: one colour per setting, legends outside the data."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter


def plot_reliability(
    bins: pd.DataFrame, ece: dict[str, float], colors: dict, title: str = "Reliability"
) -> Figure:
    """One column per setting (``bins`` has ``setting, seed, bin, lower, upper, count,
    confidence, accuracy``; seeds pooled by count): accuracy per bin against its mean confidence
    with the diagonal (perfect calibration), ECE in the panel's title; beneath, each bin's share of
    the setting's tokens on one shared scale (a setting with fewer seeds has fewer tokens, not
    lower bars)."""
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
        top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        filled = pooled[pooled["count"] > 0]
        top.plot(filled["confidence"], filled["accuracy"], "o-", color=colors[setting])
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy" if col == 0 else "")
        pooled_seeds = f"seeds {seeds}, pooled" if "," in seeds else f"seed {seeds}"
        top.set_title(f"{setting} ({pooled_seeds}): ECE {ece.get(setting, float('nan')):.3f}", fontsize=10)
        width = pooled["upper"] - pooled["lower"]
        bottom.bar(
            pooled["lower"],
            pooled["count"] / max(pooled["count"].sum(), 1),
            width=width,
            align="edge",
            edgecolor="white",
            color=colors[setting],
        )
        bottom.set(
            xlim=(0, 1), xlabel="confidence (max probability)", ylabel="share of tokens" if col == 0 else ""
        )
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    fig.suptitle(textwrap.fill(title, int(8 * 4.4 * len(settings))))  # a long group name in one column
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


def plot_attention(records: dict[str, dict], title: str = "Cross-attention") -> Figure:
    """Heatmaps of the attention of the same sentence, one panel per model: a Transformer's
    cross-attention (last layer, averaged over heads) or a seq2seq model's attention; target
    tokens down, source tokens across. ``records`` maps a label to an attention record."""
    sns.set_theme(style="white")
    first = records[next(iter(records))]
    width = max(5.5, 0.36 * len(first["source_tokens"]) + 2.5)
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
            cbar_kws={"label": "attention weight (every panel)"},
        )
        ax.set(xlabel="source", ylabel="target")
        ax.set_title(f"{label}\n({kind})", fontsize=10)
        ax.tick_params(axis="x", labelrotation=90, labelsize=10)
        ax.tick_params(axis="y", labelrotation=0, labelsize=10)
    fig.suptitle(f"{title}\n“{first['source']}”", fontsize=12)
    fig.tight_layout()
    return fig


def attention_matrix(record: dict):
    """(target x source) weights: the last layer's cross-attention averaged over heads for a
    Transformer (maps['cross'] is layers x heads x T x S), the attention of a seq2seq model."""
    maps = record["maps"]
    if "cross" in maps:
        return np.asarray(maps["cross"])[-1].mean(axis=0), "cross-attention, last layer, mean of heads"
    return np.asarray(maps["attention"]), "additive attention"
