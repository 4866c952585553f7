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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import budget, figures, findings
from analysis.bootstrap import RESAMPLES, SEEDS_ONLY
from analysis.load import DONE, SweepRuns
from analysis.metrics import METRICS
from analysis.stats import aggregate
from analysis.verdicts import BASELINE, INCONCLUSIVE, judge

DESCRIPTIVE = ("bleu", "chrf", "ece", "ppl", "params", "train_seconds", "epochs_to_90pct")
IGNORED_KEYS = {"train.seed", "train.threads", "data.dir", "data.cache_dir"}
QUESTIONS = {
    "loss.label_smoothing": "Does label smoothing change translation quality and calibration?",
    "schedule.warmup_steps": "Does the Transformer need learning-rate warmup?",
    "model.heads": "How does the number of attention heads at a fixed d_model affect BLEU?",
    "model.layers": "How does depth trade parameters for BLEU?",
    "schedule.name": "Which learning-rate schedule trains best in the same budget?",
    "model.arch": "Transformer or GRU seq2seq with attention: quality, convergence and training time?",
}
SIZE_KEYS = {"model.layers", "model.d_model", "model.ff_dim", "model.arch", "data.vocab_size"}


@dataclass
class Section:
    group: str
    question: str
    changes: list[str]
    rows: list[dict]  # the settings table, formatted
    comparisons: list[dict] = field(default_factory=list)  # every comparison, formatted
    figures: list[str] = field(default_factory=list)
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
) -> Report:
    """Compute every section, write the figures into ``out/figures``; returns the report."""
    trials = runs.trials.assign(ppl=np.exp(runs.trials["test_nll"].astype(float)))
    done = trials[trials["status"].isin(DONE)]
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
    link = run_link(runs)
    sections = [
        _section(runs, trials, group, out, exercise, link, verdicts, flagged)
        for group in order
        if _has_rows(trials, group)
    ]
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
        {"trial": row.trial, "status": row.status, "reason": _reason(row), "run": link(row.run_id)}
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


def run_link(runs: SweepRuns):
    """A function from run id to the run's page in the MLflow UI (``ablab ui`` for a local store)."""
    base = runs.tracking_uri if runs.tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    return lambda run_id: f"{base.rstrip('/')}/#/experiments/{runs.experiment_id}/runs/{run_id}"


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


def _section(runs, trials, group, out, exercise, link, verdicts, flagged) -> Section:
    members = trials[[group in gs or BASELINE in gs for gs in trials["groups"]]]
    keys = varied_keys(members)
    question = next(
        (QUESTIONS[k] for k in keys if k in QUESTIONS), f"What does changing {', '.join(keys) or group} do?"
    )
    base = members[[BASELINE in gs for gs in members["groups"]]]
    settings = _settings(members)
    changes = {s: _change(base, members[members["setting"] == s], keys) for s in settings}
    summary = aggregate(members[members["status"] == "finished"], "setting", DESCRIPTIVE)
    rows = [
        _row(summary, members, s, changes.get(s, ""), verdicts.get((s, "bleu")), flagged, link)
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
    section.figures = _figures(runs, group, members, summary, keys, out, exercise)
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


def _row(summary, members, setting, change, verdict, flagged, link) -> dict | None:
    runs = members[members["setting"] == setting]
    if runs.empty:
        return None
    found = summary[summary["setting"] == setting]
    s = found.iloc[0] if len(found) else pd.Series(dtype=float)
    diverged = (runs["status"] == "diverged").sum()
    finished = runs[runs["status"] == "finished"]
    return {
        "setting": setting,
        "changed": "(reference)" if setting == BASELINE else change or "-",
        "seeds": f"{int(s.get('n', 0))}/{len(runs)}" + (f", {diverged} diverged" if diverged else ""),
        "BLEU": _pm(s, "bleu", 2),
        "Δ BLEU [adjusted interval]": findings.delta_cell(verdict) if verdict else "-",
        "verdict": findings.verdict_cell(verdict) if verdict else "-",
        "ECE": _pm(s, "ece", 3),
        "PPL": _pm(s, "ppl", 2),
        "params": "-" if pd.isna(s.get("params_mean", math.nan)) else f"{s['params_mean'] / 1e6:.2f} M",
        "train min": _pm(s, "train_seconds", 1, scale=1 / 60),
        "still improving": f"{sum(r in flagged for r in finished['run_id'])}/{len(finished)}",
        "runs": [(f"seed {r.seed}", link(r.run_id)) for r in runs.itertuples()],
    }


def _pm(s: pd.Series, metric: str, digits: int, scale: float = 1.0) -> str:
    """``mean ± sd`` of a metric of an aggregated row, '-' where there is no value."""
    mean, sd = s.get(f"{metric}_mean", math.nan), s.get(f"{metric}_sd", math.nan)
    if mean is None or pd.isna(mean):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    return text if sd is None or pd.isna(sd) else f"{text} ± {sd * scale:.{digits}f}"


def _figures(runs, group, members, summary, keys, out: Path, exercise) -> list[str]:
    made: list[tuple[str, plt.Figure]] = []
    curves = runs.curves[runs.curves["run_id"].isin(members["run_id"])]
    if SIZE_KEYS & set(keys) and summary["params_mean"].nunique() > 1:
        made.append(
            (
                "bleu_vs_params",
                figures.plot_metric_vs_params(summary, title=f"{group}: BLEU against parameters"),
            )
        )
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(members[k])]
    axis = len(keys) == 1 and numeric and (members[keys[0]].nunique() >= 3 or keys[0].startswith("model."))
    if axis:  # a model axis such as heads, or any key with three values or more
        with_key = summary.merge(members[["setting", keys[0]]].drop_duplicates("setting"), on="setting")
        made.append(
            (
                "bleu_by_value",
                figures.plot_metric_by_value(with_key, keys[0], title=f"{group}: BLEU by {keys[0]}"),
            )
        )
    if "loss.label_smoothing" in keys and not runs.bins.empty:
        bins = runs.bins[runs.bins["run_id"].isin(members["run_id"])]
        ece = summary.set_index("setting")["ece_mean"].to_dict()
        made.append(("reliability", figures.plot_reliability(bins, ece, title=f"{group}: reliability")))
    if any(k.startswith("schedule.") for k in keys):
        if exercise is not None:
            made.append(
                ("schedules_100k", figures.plot_schedules(exercise, "Seed schedules over 100,000 steps"))
            )
        first_seed = members.groupby("setting")["run_id"].first()
        lr = curves[(curves["metric"] == "lr") & curves["run_id"].isin(first_seed)]
        if not lr.empty:
            trained = lr.rename(columns={"setting": "schedule", "value": "lr"})[["step", "schedule", "lr"]]
            made.append(
                ("schedules_trained", figures.plot_schedules(trained, f"{group}: schedules as trained"))
            )
        if (curves["metric"] == "train_loss").any():
            made.append(
                ("loss_curves", figures.plot_loss_curves(curves, _diverged(members), f"{group}: loss"))
            )
    if "model.arch" in keys or any(k.startswith("schedule.") for k in keys):
        if (curves["metric"] == "val_bleu").any():
            made.append(("val_bleu", figures.plot_val_bleu(curves, f"{group}: validation BLEU per epoch")))
    if "model.arch" in keys:
        records = _attention(runs, members)
        if len(records) > 1:
            made.append(("attention", figures.plot_attention(records, f"{group}: attention")))
    names = []
    for kind, fig in made:
        name = f"{group}_{kind}"
        fig.savefig(out / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
        fig.savefig(out / "figures" / f"{name}.svg", bbox_inches="tight")
        plt.close(fig)
        names.append(name)
    return names


def _diverged(members: pd.DataFrame) -> dict[str, int]:
    rows = members[members["status"] == "diverged"].dropna(subset=["diverged_step"])
    return dict(zip(rows["run_id"], rows["diverged_step"].astype(int), strict=True))


def _attention(runs: SweepRuns, members: pd.DataFrame) -> dict[str, dict]:
    """The same sentence's attention for each setting (the lowest seed with a record)."""
    records = {}
    for setting in dict.fromkeys(members.sort_values("seed")["setting"]):
        for run_id in members[members["setting"] == setting].sort_values("seed")["run_id"]:
            if run_id in runs.attention:
                records[setting] = runs.attention[run_id]
                break
    return records
