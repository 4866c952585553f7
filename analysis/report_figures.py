"""Which figures a group of the report gets, and their captions: what is plotted, from which
seeds, and what to look for. Figures are saved as PNG and SVG under ``<out>/figures``."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ablab.analysis import curve_figures, figures, model_figures, path_figure
from ablab.analysis.factorial import Design
from ablab.analysis.load import SweepRuns
from ablab.analysis.placement import collisions
from ablab.trainer.tracking import record

DPI = 220
"""The PNGs' resolution: twice the 110 dpi a page shows them at, sharp on high-resolution screens."""
SIZE_KEYS = {"model.layers", "model.d_model", "model.ff_dim", "model.arch", "data.vocab_size"}
CAPTIONS = {
    "training": (
        "Training of each setting ({seeds}). Left: training NLL per target token (without the "
        "label-smoothing term, so every arm is on one scale), {smoothed} over {smoothing} logged "
        "updates, {faint}. {middle}: validation BLEU (greedy) after each epoch, {validation}; a star "
        "marks where a setting first reached 90 % of its best (where it validated at least three "
        "times).{against} Look for curves still falling or rising at the right edge: there the "
        "budget, not the setting, decides the comparison."
    ),
    "bleu_vs_params": (
        "Test BLEU (mean ± sd over {seeds}) against parameter count. Look for whether the extra "
        "parameters buy BLEU at this budget."
    ),
    "interaction": (
        "Test BLEU of each cell of the design (mean over {seeds}, 95 % interval over seeds and test "
        "sentences) against {x}, one line per level of {line}; the baseline's cell ringed. Parallel "
        "lines mean the factors act independently; lines that converge, diverge or cross are an "
        "interaction, whose verdict is in the table of effects."
    ),
    "bleu_by_value": (
        "Test BLEU of each seed (dots; {seeds}) and their mean (bar) at each value of {key}; right, each "
        "setting's difference from the baseline with the simultaneous interval its verdict is read "
        "from: an interval clear of 0 is a difference."
    ),
    "reliability": (
        "Reliability diagrams (token level, teacher forced, 15 confidence bins, the seeds' tokens "
        "pooled): accuracy against mean confidence per bin, the diagonal being perfect calibration; "
        "beneath, each bin's share of the setting's tokens, on one scale for all panels. Points below "
        "the diagonal are over-confident."
    ),
    "schedules_100k": (
        "The reference schedules over 100,000 updates: Noam (warmup 4,000, d_model 512), "
        "and warmup + cosine and warmup + linear decay (warmup 2,000, peak 3e-4); each peak labelled."
    ),
    "schedules_trained": (
        "The learning rate each setting trained with (its lowest seed), against the update step; each "
        "peak labelled."
    ),
    "attention": (
        "Where each model looks when producing each target token of one test sentence ({sentence}), "
        "teacher forced on its reference, the lowest seed of each setting: rows are target tokens, "
        "columns source tokens, brighter is more weight, on one scale from 0 to 1 for every panel "
        "(the bar at the right)."
    ),
}


@dataclass(frozen=True)
class ReportFigure:
    name: str  # file stem under figures/
    caption: str
    collisions: tuple[
        str, ...
    ] = ()  # text that overlaps or escapes (ablab.analysis.placement): none, we hope


def seeds_text(members: pd.DataFrame) -> str:
    """The finished seeds the figures draw: ``seeds 1, 2, 3``, and a setting with other seeds
    (one not run yet, failed or diverged) named with its own: ``seeds 1, 2, 3; heads=8: seeds 1, 2``.
    The seeds most settings share lead (the baseline's, where there is no majority)."""
    finished = members[members["status"] == "finished"]
    by_setting = {
        setting: tuple(sorted(set(finished.loc[finished["setting"] == setting, "seed"])))
        for setting in sorted(dict.fromkeys(members["setting"]), key=lambda s: s != record.BASELINE)
    }
    counts = list(by_setting.values())
    common = max(counts, key=counts.count, default=())  # ties: the first, the baseline's
    others = [f"{setting}: {_seeds(seeds)}" for setting, seeds in by_setting.items() if seeds != common]
    return "; ".join([_seeds(common), *others])


def _seeds(seeds: tuple) -> str:
    return (
        f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}" if seeds else "no finished seed"
    )


def training_caption(seeds: str, curves: pd.DataFrame) -> str:
    """The training figure's caption for the ``curves`` it draws: its panels (the one against the
    baseline where there are a baseline and an arm), in the words of one run where each setting
    drew one."""
    one = curve_figures.one_run_per_setting(curves)
    compared = curve_figures.against_baseline(curves["setting"])
    return CAPTIONS["training"].format(
        seeds=seeds,
        smoothing=curve_figures.SMOOTHING,
        smoothed="each run's moving average" if one else "the mean over seeds of each seed's moving average",
        faint="the unsmoothed curve faint"
        if one
        else "the seeds' range shaded and the unsmoothed mean faint",
        middle="Middle" if compared else "Right",
        validation="one run per setting" if one else "mean and range over seeds",
        against=" Right: each arm's validation BLEU minus the baseline's at the same seed and epoch"
        + ("." if one else ", mean over seeds with their range shaded.")
        if compared
        else "",
    )


def group_figures(
    runs: SweepRuns,
    group: str,
    members: pd.DataFrame,
    summary: pd.DataFrame,
    keys: list[str],
    out: Path,
    colors: dict,
    reference_schedules: pd.DataFrame | None = None,
    crossed: tuple[Design, pd.DataFrame] | None = None,
    intervals: dict[str, tuple[float, float, float]] | None = None,
) -> list[ReportFigure]:
    """Make and save the figures of one group; ``reference_schedules`` (the reference schedules
    over 100,000 steps) is drawn here if given: the caller gives it to one group only. ``crossed``:
    a factorial group's design and its cells' BLEU (mean, low, high), for the interaction plot;
    ``intervals``: each arm's BLEU difference from the baseline and its verdict's interval."""
    made: list[tuple[str, plt.Figure, str]] = []
    seeds = seeds_text(members)
    curves = runs.curves[runs.curves["run_id"].isin(members["run_id"])]
    if not curves.empty:
        diverged = members[members["status"] == "diverged"].dropna(subset=["diverged_step"])
        at = dict(zip(diverged["run_id"], diverged["diverged_step"].astype(int), strict=True))
        figure = curve_figures.plot_training_curves(curves, colors, at, f"{group}: training")
        made.append(("training", figure, training_caption(seeds, curves)))
    if crossed is not None and "mean" in crossed[1] and crossed[1]["mean"].notna().any():
        made.append(_interaction(*crossed, group, seeds))
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(members[k])]
    by_value = (
        len(keys) == 1 and numeric and (members[keys[0]].nunique() >= 3 or keys[0].startswith("model."))
    )
    if SIZE_KEYS & set(keys) and summary["params_mean"].nunique() >= 3 and not by_value:
        figure = figures.plot_metric_vs_params(summary, colors, title=f"{group}: BLEU against parameters")
        made.append(("bleu_vs_params", figure, CAPTIONS["bleu_vs_params"].format(seeds=seeds)))
    if by_value:
        finished = members[members["status"] == "finished"]
        title = f"{group}: BLEU by {keys[0]}"
        figure = figures.plot_metric_by_value(finished, keys[0], colors, intervals, title=title)
        made.append(("bleu_by_value", figure, CAPTIONS["bleu_by_value"].format(seeds=seeds, key=keys[0])))
    if "loss.label_smoothing" in keys and not runs.bins.empty:
        bins = runs.bins[runs.bins["run_id"].isin(members["run_id"])]
        ece = summary.set_index("setting")["ece_mean"].to_dict()
        figure = model_figures.plot_reliability(
            bins, ece, colors, title=f"{group}: reliability on the test set"
        )
        made.append(("reliability", figure, CAPTIONS["reliability"]))
    if reference_schedules is not None:
        figure = figures.plot_schedules(
            reference_schedules,
            "The reference schedules over 100,000 updates",
            reference_colours(reference_schedules["schedule"], members, colors),
        )
        made.append(("schedules_100k", figure, CAPTIONS["schedules_100k"]))
    if any(k.startswith("schedule.") for k in keys):
        trained = trained_schedules(members, curves)
        if not trained.empty:
            figure = figures.plot_schedules(trained, f"{group}: schedules as trained", colors)
            made.append(("schedules_trained", figure, CAPTIONS["schedules_trained"]))
    if "model.arch" in keys:
        records = _attention(runs, members)
        if len(records) > 1:
            sentence = textwrap.shorten(next(iter(records.values()))["source"], 80)
            figure = model_figures.plot_attention(records, f"{group}: attention")
            made.append(("attention", figure, CAPTIONS["attention"].format(sentence=sentence)))
    return [save(fig, f"{group}_{kind}", caption, out) for kind, fig, caption in made]


def save(fig: plt.Figure, name: str, caption: str, out: Path) -> ReportFigure:
    """``out/figures/<name>.png`` and ``.svg``; the figure is closed."""
    fig.savefig(out / "figures" / f"{name}.png", dpi=DPI)
    with plt.rc_context({"svg.hashsalt": "ablab"}):  # the same figure, the same file: no churn in git
        fig.savefig(out / "figures" / f"{name}.svg", metadata={"Date": None})
    saved = ReportFigure(name, caption, tuple(collisions(fig)))
    plt.close(fig)
    return saved


def looks_figure(table: pd.DataFrame, colors: dict, design, out: Path) -> ReportFigure:
    """A sequential sweep's looks (:func:`ablab.analysis.looks.look_table`), as ``looks.png``."""
    return save(path_figure.plot_paths(table, colors, design), "looks", path_figure.CAPTION, out)


def reference_colours(schedules, members: pd.DataFrame, colors: dict) -> dict:
    """A reference schedule in the colour of the setting that trains with it (the baseline's black
    first), so that the figure of shapes and the figures of results read alike; a schedule no
    setting of the group uses takes a colour of its own."""
    by_schedule = {}
    if "schedule.name" in members:
        used = members.dropna(subset=["schedule.name"])
        for setting, name in zip(used["setting"], used["schedule.name"], strict=True):
            if setting == record.BASELINE or name not in by_schedule:
                by_schedule[name] = setting
    names = list(dict.fromkeys(schedules))
    own = figures.palette([*colors, *names])
    return {name: colors[by_schedule[name]] if name in by_schedule else own[name] for name in names}


def trained_schedules(members: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``step, schedule, lr``: the learning rate each setting trained with, from its lowest seed
    that logged one (a seed not run yet, or failed at its start, has none)."""
    lr = curves[(curves["metric"] == "train/lr") & curves["run_id"].isin(members["run_id"])]
    logged = members[members["run_id"].isin(lr["run_id"])]
    lr = lr[lr["run_id"].isin(logged.sort_values("seed").groupby("setting")["run_id"].first())]
    return lr.rename(columns={"setting": "schedule", "value": "lr"})[["step", "schedule", "lr"]]


def _interaction(crossed: Design, cells: pd.DataFrame, group: str, seeds: str) -> tuple[str, plt.Figure, str]:
    """BLEU against the second factor, a line per level of the first, a panel per level
    combination of the others."""
    rows_f, cols_f, *rest = crossed.factors
    panel = None
    if rest:
        panel = "panel"
        cells = cells.assign(
            panel=[
                "; ".join(f"{f.name} = {v}" for f, v in zip(rest, values, strict=True))
                for values in cells[[f.name for f in rest]].itertuples(index=False)
            ]
        )
    title = f"{group}: BLEU by {cols_f.name} and {rows_f.name}"
    ylabel = "BLEU (mean over seeds, 95 % interval)"
    figure = figures.plot_interaction(
        cells.dropna(subset=["mean"]), cols_f.name, rows_f.name, panel, ylabel, title
    )
    return "interaction", figure, CAPTIONS["interaction"].format(seeds=seeds, x=cols_f.name, line=rows_f.name)


def _attention(runs: SweepRuns, members: pd.DataFrame) -> dict[str, dict]:
    """The same sentence's attention for each setting (the lowest seed with a record)."""
    records = {}
    for setting in dict.fromkeys(members.sort_values("seed")["setting"]):
        for run_id in members[members["setting"] == setting].sort_values("seed")["run_id"]:
            if run_id in runs.attention:
                records[setting] = runs.attention[run_id]
                break
    return records
