"""Figures from tidy tables (pandas in, matplotlib ``Figure`` out); nothing here trains or tracks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return fig
