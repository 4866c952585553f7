"""The figure of a sequential sweep's looks: each comparison's Δ and repeated confidence
interval as seeds were added, and why it stopped."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ablab.analysis.figures import plain_ticks
from ablab.analysis.metrics import METRICS
from ablab.analysis.sequential import Design

CAPTION = (
    "Each comparison's difference from the baseline (dot) at each look, with the repeated "
    "confidence interval of that look (the level it spends of the comparison's Holm share, so the "
    "intervals of all looks hold together); a comparison is decided at the look whose interval "
    "leaves 0, stops as futile where more seeds could not decide it, or at its most seeds. An "
    "arrow marks an interval that runs off its panel."
)


def plot_paths(table: pd.DataFrame, colors: dict, design: Design) -> Figure:
    """The looks of :func:`ablab.analysis.looks.look_table` as small multiples, a panel a
    comparison (three across): Δ against seeds with each look's interval, 0 dashed, the seeds of
    the design's looks as ticks, how it ended written at its last look (from there inward at the
    first and the last look, so it stays inside the frame). Each panel's scale is set
    by its estimates, 0 and its last interval: an early look's interval, wide because that look
    spends little of the level, runs off the panel, marked by an arrow at the edge."""
    arms = list(dict.fromkeys(table["arm"]))
    across = min(3, len(arms))
    down = math.ceil(len(arms) / across)
    fig, axes = plt.subplots(
        down, across, figsize=(3.4 * across, 2.6 * down), squeeze=False, layout="constrained"
    )
    axes = axes.ravel()
    for ax, arm in zip(axes, arms, strict=False):
        own = table[table["arm"] == arm].sort_values("seeds")
        end = own.iloc[-1]
        core = [*own["delta"], end["low"], end["high"], 0.0]
        pad = 0.25 * (max(core) - min(core) or 1.0)
        bottom, top = min(core) - pad, max(core) + 2 * pad  # room above for the label
        colour = colors.get(arm, "C0")
        ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
        inside = 0.03 * (top - bottom)  # an arrow at the edge, whole within the panel
        floor, ceiling = bottom + inside, top - inside
        low, high = own["low"].clip(lower=floor), own["high"].clip(upper=ceiling)
        ax.vlines(own["seeds"], low, high, color=colour, lw=2)
        for marker, beyond, edge in (("v", own["low"] < floor, floor), ("^", own["high"] > ceiling, ceiling)):
            ax.plot(own["seeds"][beyond], [edge] * int(beyond.sum()), marker, color=colour)
        ax.plot(own["seeds"], own["delta"], "o-", color=colour, markersize=5)
        label_at = min(end["high"], top - pad)
        at_edge = {design.looks[0]: ("left", -6), design.maximum: ("right", 6)}  # kept off the frame
        align, shift = at_edge.get(end["seeds"], ("center", 0))
        ax.annotate(
            end["stopped"],
            (end["seeds"], label_at),
            xytext=(shift, 4),
            textcoords="offset points",
            ha=align,
            va="bottom",
            fontsize=8,
        )
        ax.set_ylim(bottom, top)
        ax.set_xlim(design.looks[0] - 0.7, design.maximum + 0.7)
        ax.set_xticks(design.looks)
        plain_ticks(ax.yaxis)
        ax.set_title(arm, fontsize=10)
        ax.set_xlabel("seeds", fontsize=9)
        ax.set_ylabel(f"Δ {METRICS[end['metric']].label}", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[len(arms) :]:
        ax.set_visible(False)
    return fig
