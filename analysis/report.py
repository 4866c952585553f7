"""The comparison report of a sweep: a section per ablation group, each with its question, a
table of the settings with each arm's effect on BLEU and its verdict, every comparison against
the baseline in detail, its figures and a finding computed from the verdicts; then every trial
that did not finish, with its reason.

The statistics are :mod:`analysis.bootstrap` (effect, interval, p across seeds and sentences)
and :mod:`analysis.verdicts` (Holm over the whole report, verdicts, seeds it would take); the
words are :mod:`analysis.findings`; what budget each result had, :mod:`analysis.budget`.

Writes ``report.md`` with the figures (PNG and SVG) beside it in ``figures/``, and a
self-contained ``report.html`` (figures embedded as data URIs, opens offline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import budget, findings
from analysis.bootstrap import RESAMPLES, SEEDS_ONLY
from analysis.figures import palette
from analysis.load import SweepRuns
from analysis.metrics import METRICS
from analysis.report_figures import ReportFigure, group_figures
from analysis.stats import aggregate
from analysis.verdicts import BASELINE, INCONCLUSIVE, judge
from trainer import record

DESCRIPTIVE = ("bleu", "chrf", "ece", "ppl", "params", "train_seconds", "epochs_to_90pct")
IGNORED_KEYS = {"train.seed", "train.threads", "data.dir", "data.cache_dir"}


@dataclass
class Section:
    group: str
    question: str
    changes: list[str]
    rows: list[dict]  # the settings table, formatted
    comparisons: list[dict] = field(default_factory=list)  # every comparison, formatted
    figures: list[ReportFigure] = field(default_factory=list)
    finding: str = ""
    to_resolve: list[str] = field(default_factory=list)  # how many seeds each inconclusive one needs


@dataclass
class Report:
    title: str
    intro: list[str]
    sections: list[Section]
    not_finished: list[dict]


class NothingToReport(LookupError):
    """No trial of the sweep finished or diverged."""


def build(
    runs: SweepRuns,
    out: Path,
    groups: list[str] | None = None,
    exercise: pd.DataFrame | None = None,
    description: str = "",
    n_resamples: int = RESAMPLES,
    links: bool = True,
) -> Report:
    """Compute every section, write the figures into ``out/figures``; returns the report."""
    trials = runs.trials.assign(ppl=np.exp(runs.trials["test_nll"].astype(float)))
    done = trials[trials["status"].isin(record.DONE)]
    if done.empty:
        raise NothingToReport(
            f"no trial of {runs.experiment} has finished yet ({len(trials)} runs: "
            f"{', '.join(sorted(set(trials['status'])))}); run the sweep first (ablab run SPEC)."
        )
    (out / "figures").mkdir(parents=True, exist_ok=True)
    found = list(dict.fromkeys(g for gs in trials["groups"] for g in gs if g != BASELINE))
    order = [g for g in (groups or []) if g in found] + [g for g in found if g not in (groups or [])]
    verdicts = judge(runs, trials, n_resamples)
    flagged = budget.flags(trials, runs.curves)
    link = run_link(runs, links)
    colors = palette([BASELINE, *trials["setting"]])
    sections = []
    for group in order:
        if _has_rows(trials, group):
            sections.append(_section(runs, trials, group, out, exercise, link, verdicts, flagged, colors))
            if any(f.name.endswith("_schedules_100k") for f in sections[-1].figures):
                exercise = None  # the seed schedules are shown once
    seeds = sorted(set(done["seed"]))
    family = len(verdicts)
    intro = [
        description,
        f"{len(trials)} trials in MLflow experiment `{runs.experiment}`; {len(done)} done "
        f"({_count(trials, 'finished')} finished, {_count(trials, 'diverged')} diverged), "
        f"{len(trials) - len(done)} not. Seeds: {', '.join(map(str, seeds))}.",
        f"Budget: {budget.budget_text(trials)} per trial; {len(flagged)} of "
        f"{_count(trials, 'finished')} finished trials were {budget.STILL_IMPROVING} (best validation "
        "BLEU in the last validation, or validation loss still falling).",
        "Test metrics: sacreBLEU, cased and detokenized (tok 13a), on "
        + ", ".join(sorted(set(runs.test_sets.values())) or ["the test set"])
        + "; values are mean ± sd over seeds; PPL is exp(test NLL per target token).",
        findings.method_text(
            family, n_resamples, seeds, any(v.comparison.scope == SEEDS_ONLY for v in verdicts.values())
        ),
    ]
    not_finished = [
        {
            "trial": row.trial,
            "status": row.status,
            "reason": _reason(row),
            "runs": [("run", row.run_id, link(row.run_id))],
        }
        for row in trials[trials["status"] != "finished"].itertuples()
    ]
    return Report(f"ablab report: {runs.experiment}", [t for t in intro if t], sections, not_finished)


def _count(trials: pd.DataFrame, status: str) -> int:
    return int((trials["status"] == status).sum())


def _has_rows(trials: pd.DataFrame, group: str) -> bool:
    return any(group in gs for gs in trials["groups"])


def _reason(row) -> str:
    if row.status == "diverged":
        step = row.diverged_step
        return f"diverged at update {int(step)}" if step is not None and not pd.isna(step) else "diverged"
    return str(row.error or f"run is {row.status}")


def run_link(runs: SweepRuns, links: bool = True):
    """A function from run id to the run's page in the MLflow UI (``ablab ui`` for a local store),
    or, without ``links`` (a report committed where the store is not), to None."""
    if not links:
        return lambda run_id: None
    return lambda run_id: record.ui_link(runs.tracking_uri, runs.experiment_id, run_id)


def varied_keys(rows: pd.DataFrame) -> list[str]:
    """Config keys (dotted columns) whose values differ among the rows that logged a config (a
    run that never started has none)."""
    if "model.arch" in rows.columns:
        rows = rows[rows["model.arch"].notna()]
    return [
        column
        for column in rows.columns
        if "." in column and column not in IGNORED_KEYS and shown(rows[column]).nunique() > 1
    ]


def shown(column: pd.Series) -> pd.Series:
    """Config values as the spec wrote them: a column of whole numbers with gaps (runs that never
    started) holds 4 as 4.0, and is shown as 4 again."""
    values = column.dropna()
    if pd.api.types.is_float_dtype(column) and len(values) and values.map(float.is_integer).all():
        return column.map(lambda v: str(int(v)) if pd.notna(v) else "nan")
    return column.map(str)


def _section(runs, trials, group, out, exercise, link, verdicts, flagged, colors) -> Section:
    members = trials[[group in gs or BASELINE in gs for gs in trials["groups"]]]
    keys = varied_keys(members)
    question = findings.question(keys, group)
    base = members[[BASELINE in gs for gs in members["groups"]]]
    settings = _settings(members)
    changes = {s: _change(base, members[members["setting"] == s], keys) for s in settings}
    summary = aggregate(members[members["status"] == "finished"], "setting", DESCRIPTIVE)
    calibration = "loss.label_smoothing" in keys
    rows = [
        _row(summary, members, s, changes.get(s, ""), verdicts.get((s, "bleu")), flagged, link, calibration)
        for s in [BASELINE, *settings]
    ]
    mine = [verdicts[(s, m)] for s in settings for m in METRICS if (s, m) in verdicts]
    section = Section(group, question, [f"{s}: {c}" for s, c in changes.items() if c], [r for r in rows if r])
    section.comparisons = [findings.comparison_row(v) for v in mine]
    section.to_resolve = [
        f"{v.setting} on {METRICS[v.comparison.metric].label}: {findings.seeds_to_resolve(v)}"
        for v in mine
        if v.word == INCONCLUSIVE
    ]
    exercise = exercise if "schedule.name" in keys else None
    section.figures = group_figures(runs, group, members, summary, keys, out, colors, exercise)
    primary = ["ece", "bleu"] if "loss.label_smoothing" in keys else ["bleu"]
    section.finding = findings.group_finding(
        [verdicts[(s, m)] for s in settings for m in primary if (s, m) in verdicts],
        members,
        summary,
        keys,
        flagged,
    )
    return section


def _settings(members: pd.DataFrame) -> list[str]:
    """The group's settings other than the baseline, in trial order."""
    return [s for s in dict.fromkeys(members["setting"]) if s != BASELINE]


def _change(base: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> str:
    """``model.heads 4 → 1``: how a setting's config differs from the baseline's."""
    if "model.arch" in rows.columns:  # a run that never started logged no config
        base, rows = base[base["model.arch"].notna()], rows[rows["model.arch"].notna()]
    if base.empty or rows.empty:
        return ""
    both = pd.concat([base.iloc[:1], rows.iloc[:1]])
    pairs = [(k, *shown(both[k]).tolist()) for k in keys]
    return ", ".join(f"{k} {before} → {after}" for k, before, after in pairs if before != after)


def _row(summary, members, setting, change, verdict, flagged, link, calibration: bool) -> dict | None:
    """A setting as a row of the group's table, in the layout of Vaswani et al. 2017's Table 3:
    what changed, BLEU and its difference from the baseline with the verdict, PPL, size, time;
    ECE where the group is about calibration."""
    runs = members[members["setting"] == setting]
    if runs.empty:
        return None
    found = summary[summary["setting"] == setting]
    s = found.iloc[0] if len(found) else pd.Series(dtype=float)
    diverged = (runs["status"] == "diverged").sum()
    finished = runs[runs["status"] == "finished"]
    row = {
        "setting": setting,
        "changed": "(reference)" if setting == BASELINE else change or "-",
        "seeds": f"{int(s.get('n', 0))}/{len(runs)}" + (f", {diverged} diverged" if diverged else ""),
        "BLEU": _pm(s, "bleu", 2),
        "Δ BLEU [adjusted interval]": findings.delta_cell(verdict) if verdict else "-",
        "verdict": findings.verdict_cell(verdict) if verdict else "-",
    }
    if calibration:
        row["ECE"] = _pm(s, "ece", 3)
    row |= {
        "PPL": _pm(s, "ppl", 2),
        "params": "-" if pd.isna(s.get("params_mean", math.nan)) else f"{s['params_mean'] / 1e6:.2f} M",
        "train min": _pm(s, "train_seconds", 1, scale=1 / 60),
        "still improving": f"{sum(r in flagged for r in finished['run_id'])}/{len(finished)}",
        "runs": [(f"seed {r.seed}", r.run_id, link(r.run_id)) for r in runs.itertuples()],
    }
    return row


def _pm(s: pd.Series, metric: str, digits: int, scale: float = 1.0) -> str:
    """``mean ± sd`` of a metric of an aggregated row, '-' where there is no value."""
    mean, sd = s.get(f"{metric}_mean", math.nan), s.get(f"{metric}_sd", math.nan)
    if mean is None or pd.isna(mean):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    return text if sd is None or pd.isna(sd) else f"{text} ± {sd * scale:.{digits}f}"
