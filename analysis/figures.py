"""Figures from tidy tables (pandas in, matplotlib ``Figure`` out); nothing here trains or tracks.

Conventions every figure keeps: one colour per setting, the same in every figure of a report and,
where no two settings of a report compete for it, in every report (:func:`palette`; the baseline
is always black, no arm is grey); legends outside the data; axes that start where the data starts;
tick labels without offset notation; parameter counts in millions; panels that are compared share
their y-scale; labels beside points are placed clear of each other and of the axes' edges
(:mod:`ablab.analysis.placement`); curves over seeds are the mean with a band (the seeds' range), so
that one setting is one line.
"""

from __future__ import annotations

import textwrap
import zlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ablab.analysis.placement import place_labels  # noqa: E402
from ablab.trainer.tracking.record import BASELINE  # noqa: E402

COLOURS = [
    *(c for i, c in enumerate(sns.color_palette("tab10", 10)) if i != 7),  # tab10 without its grey
    (0.16, 0.19, 0.55),  # navy, raspberry and dark teal: hues and shades tab10 leaves free
    (0.66, 0.05, 0.42),
    (0.0, 0.44, 0.39),
]
"""Twelve arms' colours, none grey: a suite of a dozen ablations draws each in its own."""
BASELINE_COLOUR = (0.1, 0.1, 0.1)
SHARED_LABEL_COLOUR = (0.4, 0.4, 0.4)
"""A label that names several settings (a text, never an arm's line)."""


def palette(settings) -> dict[str, tuple]:
    """Setting -> colour: black for the baseline; an arm's colour follows from its name (a stable
    hash), so ``no_warmup`` is drawn alike in every report; where two settings of one report would
    share a colour, the later takes the next free one (beyond twelve arms, colours repeat)."""
    out, taken = {}, set()
    for setting in dict.fromkeys(settings):
        if setting == BASELINE:
            out[setting] = BASELINE_COLOUR
            continue
        start = zlib.crc32(str(setting).encode()) % len(COLOURS)
        free = [i for i in range(start, start + len(COLOURS)) if i % len(COLOURS) not in taken]
        index = (free[0] if free else start) % len(COLOURS)
        taken.add(index)
        out[setting] = COLOURS[index]
    return out


def plain_ticks(axis) -> None:
    """Tick labels as plain numbers (``0.0003``, ``12,000``, ``−5`` with the minus sign the
    tables print, not a hyphen), never a shared ``1e−4`` offset."""

    def plain(value: float, _=None) -> str:
        return (f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}").replace("-", "−")

    axis.set_major_formatter(FuncFormatter(plain))


def legend_below(fig: Figure, axes, columns: int = 4) -> None:
    """One legend for the figure's settings, beneath its axes, outside the data: at most
    ``columns`` entries a row, fewer where long names would run past the figure's edges; the
    entries read left to right, then row by row, in the order the axes drew them."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    for across in range(min(columns, len(labels)), 0, -1):
        # matplotlib fills a legend column by column; this order makes it read row by row
        order = [name for column in range(across) for name in labels[column::across]]
        legend = fig.legend(
            [handles[name] for name in order],
            order,
            loc="lower center",
            ncol=across,
            fontsize=11,  # as large as the tick labels: a page shows a wide figure at half its size
            frameon=False,
        )
        width = legend.get_window_extent(renderer).width
        if across == 1 or width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    if width > 0.98 * fig.bbox.width:  # one name wider than the figure: smaller type
        for text in legend.get_texts():
            text.set_fontsize(11 * 0.98 * fig.bbox.width / width)
    rows = -(-len(labels) // across)
    beneath = 0.3 * rows + 0.25  # inches the legend takes: beyond a seventh of the figure, it grows
    fig.set_figheight(fig.get_figheight() + max(0.0, beneath - fig.get_figheight() / 7))
    fig.tight_layout(rect=(0, beneath / fig.get_figheight(), 1, 1))


def _millions(value: float, _=None) -> str:
    return f"{value / 1e6:g} M"


def plot_schedules(table: pd.DataFrame, title: str = "Learning-rate schedules", colors=None) -> Figure:
    """Learning rate against update step, one line per schedule in its setting's colour, each peak
    marked in that colour and labelled (a peak at the first logged step is one from the start: no warmup).
    Settings that trained with the same schedule at every step share one label, and their lines
    are drawn with dashes of decreasing length over each other, so that every colour shows;
    schedules that differ but peak at the same point share that peak's label (in grey: the
    baseline is black).

    ``table`` has columns ``step``, ``schedule``, ``lr``.
    """
    sns.set_theme(style="whitegrid")
    colors = colors or palette(table["schedule"])
    table = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    same = _identical(table)
    for name, line in table.groupby("schedule", sort=False):
        place = same[name].index(name)
        dashes = (None, (6, 4), (2, 3), (1, 4))[min(place, 3)]
        ax.plot(
            line["step"], line["lr"], color=colors[name], linewidth=1.6, label=name,
            **({"dashes": dashes} if dashes else {}),
        )  # fmt: skip
    firsts = table[table["schedule"].isin({names[0] for names in same.values()})]
    peaks = firsts.loc[firsts.groupby("schedule", sort=False)["lr"].idxmax()]
    ax.set(xlabel="update step", ylabel="learning rate", title=title)
    ax.set_xlim(table["step"].min(), table["step"].max())
    ax.set_ylim(0, table["lr"].max() * 1.35)
    plain_ticks(ax.xaxis)
    plain_ticks(ax.yaxis)
    legend_below(fig, [ax])
    for peak in peaks.itertuples():
        ax.plot(peak.step, peak.lr, "o", color=colors[peak.schedule], markersize=5, clip_on=False, zorder=3)
    first = table.groupby("schedule", sort=False)["step"].min()
    points, labels, label_colours = [], [], []
    for (step, lr), at in peaks.groupby([peaks["step"], peaks["lr"].round(12)], sort=False):
        names = [name for schedule in at["schedule"] for name in same[schedule]]
        start = all(r.step == first[r.schedule] for r in at.itertuples())
        points.append((step, lr))
        labels.append(
            f"{_listed(names)}: peak {lr:.2g} " + ("from the start" if start else f"at update {int(step):,}")
        )
        label_colours.append(colors[at["schedule"].iloc[0]] if len(at) == 1 else SHARED_LABEL_COLOUR)
    place_labels(ax, points, labels, label_colours, 8)
    return fig


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _identical(table: pd.DataFrame) -> dict[str, list[str]]:
    """Each schedule -> the schedules with the same learning rate at the same steps, itself among
    them (all in the table's order)."""
    names: dict[tuple, list[str]] = {}
    for name, line in table.groupby("schedule", sort=False):
        names.setdefault(tuple(zip(line["step"], np.round(line["lr"], 12), strict=True)), []).append(name)
    return {name: same for same in names.values() for name in same}


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
    runs: pd.DataFrame,
    key: str,
    colors: dict,
    intervals: dict[str, tuple[float, float, float]] | None = None,
    metric: str = "bleu",
    title: str = "",
) -> Figure:
    """Left: the metric of each seed (dots) and their mean (a bar across them, the means joined)
    at each value of one config key, e.g. heads, placed at the value itself where the values are
    numbers about evenly spread (1, 2, 3, 4, 6 layers: 6 is two steps from 4), else in their order
    (0, 100, 4,000 warmup updates; False, True). Right, given ``intervals`` (setting -> Δ, low,
    high: each arm's difference from the baseline with the simultaneous interval its verdict is
    read from): those intervals against 0. ``runs`` has ``setting``, ``key``, ``seed``, ``metric``."""
    sns.set_theme(style="whitegrid")
    forest = {s: i for s, i in (intervals or {}).items() if s in set(runs["setting"])}
    fig, axes = plt.subplots(
        1, 2 if forest else 1, figsize=(10.5 if forest else 6, 4.2), squeeze=False,
        gridspec_kw={"width_ratios": [3, 2] if forest else [1]},
    )  # fmt: skip
    ax = axes[0][0]
    data = runs.dropna(subset=[metric]).sort_values([key, "seed"])
    values = list(dict.fromkeys(data[key]))
    means = data.groupby(key, sort=False)[metric].mean()
    numbers = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
    gaps = np.diff(values) if numbers else None  # (True/False: in order)
    even = gaps is not None and (len(gaps) == 0 or gaps.max() <= 4 * gaps.min())
    at_x = dict(zip(values, values if even else range(len(values)), strict=True))  # 6 layers sits at 6
    gap = min(np.diff(list(at_x.values())), default=1)
    ax.plot(
        list(at_x.values()), [means[v] for v in values], "-", color=BASELINE_COLOUR, linewidth=0.8, alpha=0.5
    )
    for value, x in at_x.items():
        at = data[data[key] == value]
        color = colors[at["setting"].iloc[0]]
        spread = np.linspace(-0.12, 0.12, len(at)) * gap if len(at) > 1 else np.zeros(1)
        ax.plot(x + spread, at[metric], "o", color=color, markersize=5, alpha=0.8)
        ax.plot([x - 0.22 * gap, x + 0.22 * gap], [means[value]] * 2, "-", color=color, linewidth=2.5)
    ax.set_xticks(list(at_x.values()), [f"{v:g}" if isinstance(v, float) else str(v) for v in values])
    ax.set(
        xlabel=key, ylabel=f"{metric.upper()}: each seed, and their mean", title=title or f"{metric} by {key}"
    )
    plain_ticks(ax.yaxis)
    if forest:
        right = axes[0][1]
        names = list(forest)
        for y, name in enumerate(names):
            delta, low, high = forest[name]
            right.errorbar(
                delta, y, xerr=[[delta - low], [high - delta]], fmt="o", color=colors[name], capsize=4
            )
        right.axvline(0, color=BASELINE_COLOUR, linewidth=1)
        right.set_yticks(range(len(names)), names)
        right.set_ylim(-0.6, len(names) - 0.4)
        right.invert_yaxis()
        right.set(
            xlabel=f"Δ {metric.upper()} against the baseline", title="the verdicts' simultaneous intervals"
        )
        plain_ticks(right.xaxis)
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
    fig.suptitle(textwrap.fill(title, int(width * 9)))
    legend_below(fig, axes[0][-1:])
    return fig


def _sd(value) -> float:
    return 0.0 if value is None or pd.isna(value) else float(value)
