"""The comparison report of a sweep: a section per ablation group, each with its question, a
table of the settings with each arm's effect on the primary metric and its verdict, every
comparison against the baseline in detail, its figures and a finding computed from the verdicts
(a crossed group: its factorial tables, main effects and interactions instead,
:mod:`ablab.analysis.factorial`); then every trial that did not finish, with its reason.

The statistics are :mod:`ablab.analysis.bootstrap` (effect, interval, p across seeds and sentences)
and :mod:`ablab.analysis.verdicts` (Holm within each family, verdicts, seeds it would take); the
words are :mod:`ablab.analysis.findings`; what budget each result had, :mod:`ablab.analysis.budget`.

Writes ``report.md`` with the figures (PNG and SVG) beside it in ``figures/``, and a
self-contained ``report.html`` (figures embedded as data URIs, opens offline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ablab.analysis import budget, findings, hardware, questions
from ablab.analysis.bootstrap import RESAMPLES, SEEDS_ONLY
from ablab.analysis.factorial import Design, design, display_levels, factors_of
from ablab.analysis.factorial_tables import cell_means, cell_tables
from ablab.analysis.figures import palette
from ablab.analysis.load import SweepRuns
from ablab.analysis.looks import look_rows, sequential_report
from ablab.analysis.metrics import METRICS
from ablab.analysis.report_figures import ReportFigure, group_figures, looks_figure
from ablab.analysis.searches import search_rows
from ablab.analysis.sequential import Design as SeedDesign
from ablab.analysis.settings_table import (
    architecture_rows,
    change,
    is_architecture,
    row,
    settings,
    varied_keys,
)
from ablab.analysis.stats import aggregate
from ablab.analysis.summary import SummaryGroup, baseline_row, config_line, design_rows, group_rows
from ablab.analysis.translations import sample_rows
from ablab.analysis.verdicts import DEFAULT_PRIMARY, DIFFERS, INCONCLUSIVE, Evidence, Verdict, gather, judge
from ablab.trainer.tracking import record
from ablab.trainer.tracking.store import ablab_version

DESCRIPTIVE = ("bleu", "chrf", "ece", "ppl", "params", "train_seconds", "epochs_to_90pct")


@dataclass
class GroupSection:
    group: str
    question: str
    changes: list[str]
    rows: list[dict]  # the settings table, formatted
    comparisons: list[dict] = field(default_factory=list)  # every comparison (or effect), formatted
    figures: list[ReportFigure] = field(default_factory=list)
    finding: str = ""
    to_resolve: list[str] = field(default_factory=list)  # how many seeds each inconclusive one needs
    expect: str = ""  # the spec's expectation, shown beside the verdicts
    design: str = ""  # a crossed group: its factors and levels, in words
    cell_tables: list[tuple[str, list[dict]]] = field(default_factory=list)  # (caption, rows)
    same_test_set: list[dict] = field(default_factory=list)  # per-seed paired-bootstrap p's, apart
    samples: list[dict] = field(default_factory=list)  # the first test sentences, as translated
    architecture: list[dict] = field(default_factory=list)  # an architecture group: Vaswani's Table 3


@dataclass(frozen=True)
class GroupText:
    """What the spec says of a group: its question, what to expect and its primary metric (any
    may be empty; the primary metric is then the report's)."""

    question: str = ""
    expect: str = ""
    primary: str = ""
    levels: dict[str, list[str]] | None = None  # key -> values as declared (factorial references)


@dataclass
class _Context:
    runs: SweepRuns
    trials: pd.DataFrame
    out: Path
    link: object
    evidence: Evidence
    verdicts: dict
    designs: dict[str, Design]
    flagged: dict[str, str]
    colors: dict
    leads: dict[str, str]  # group -> its primary metric


@dataclass
class Report:
    title: str
    intro: list[str]  # the trials, budget and compute, who made it
    sections: list[GroupSection]
    not_finished: list[dict]
    searches: list[dict] = field(default_factory=list)  # a searched spec: how each point's values were chosen
    question: str = ""  # the spec's description: what the sweep asks
    config: str = ""  # the baseline's configuration in one line
    summary: list[SummaryGroup] = field(default_factory=list)  # every primary comparison, by group
    baseline: dict | None = None  # the summary's reference row
    method: list[str] = field(default_factory=list)  # test metrics, statistics, hardware: after the results
    looks: list[dict] = field(default_factory=list)  # a sequential design: each comparison's looks
    looks_figure: ReportFigure | None = None  # ... and how its estimate moved as seeds were added


class NothingToReport(LookupError):
    """No trial of the sweep finished or diverged."""


def build(
    runs: SweepRuns,
    out: Path,
    groups: list[str] | None = None,
    reference_schedules: pd.DataFrame | None = None,
    description: str = "",
    n_resamples: int = RESAMPLES,
    links: bool = True,
    texts: dict[str, GroupText] | None = None,
    primary_metric: str = DEFAULT_PRIMARY,
    seed_design: SeedDesign | None = None,
    note: str = "",
) -> Report:
    """Compute every section, write the figures into ``out/figures`` (its earlier images
    removed); returns the report.
    ``texts``: the spec's question, expectation and primary metric of each group;
    ``primary_metric``: the one of a group that names none (ablab.analysis.verdicts: families);
    ``note``: a line for the introduction (what of the experiment the report leaves out)."""
    trials = runs.trials.assign(ppl=np.exp(runs.trials["test_nll"].astype(float)))
    done = trials[trials["status"].isin(record.DONE)]
    if done.empty:
        raise NothingToReport(
            f"no trial of {runs.experiment} has finished yet ({len(trials)} runs: "
            f"{', '.join(sorted(set(trials['status'])))}); run the sweep first (ablab run SPEC)."
        )
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for made_before in [*(out / "figures").glob("*.png"), *(out / "figures").glob("*.svg")]:
        made_before.unlink()  # the folder holds this report's figures, not one an earlier report drew
    found = list(dict.fromkeys(g for gs in trials["groups"] for g in gs if g != record.BASELINE))
    order = [g for g in (groups or []) if g in found] + [g for g in found if g not in (groups or [])]
    evidence = gather(runs, trials, n_resamples)
    texts = texts or {}
    designs = crossed_designs(trials, order, texts)
    leads = group_leads(order, texts, primary_metric)
    verdicts = judge(evidence, list(designs.values()), leads)
    looked = pd.DataFrame()
    if seed_design is not None:  # seeds added look by look: the primary verdicts are the procedure's
        verdicts, looked = sequential_report(evidence, leads, set(designs), verdicts, seed_design)
    flagged = budget.flags(trials, runs.curves)
    context = _Context(
        runs, trials, out, run_link(runs, links), evidence, verdicts, designs, flagged,
        palette([record.BASELINE, *trials["setting"]]), leads,
    )  # fmt: skip
    sections = []
    for group in order:
        if _has_rows(trials, group):
            sections.append(_section(context, group, texts.get(group, GroupText()), reference_schedules))
            if any(f.name.endswith("_schedules_100k") for f in sections[-1].figures):
                reference_schedules = None  # the reference schedules are shown once
    seeds = sorted(set(done["seed"]))
    families = {v.family_name: v.family for v in verdicts.values()}  # confounded ones are not in them
    intro = [
        f"{len(trials)} trials in MLflow experiment `{runs.experiment}`; {len(done)} done "
        f"({_count(trials, 'finished')} finished, {_count(trials, 'diverged')} diverged), "
        f"{len(trials) - len(done)} not. Seeds: {', '.join(map(str, seeds))}.",
        note,
        f"Budget: {budget.budget_text(trials)} per trial; {len(flagged)} of "
        f"{_count(trials, 'finished')} finished trials were {budget.STILL_IMPROVING} (best validation "
        "BLEU in the last validation, or validation loss still falling).",
        f"Compute: {budget.compute_text(trials, runs.curves)}.",
    ]
    method = [
        hardware.intro_text(done),
        f"Test metrics: sacreBLEU, cased and detokenized ({findings.tokenizers_text(trials)}), on "
        + ", ".join(sorted(set(runs.test_sets.values())) or ["the test set"])
        + "; values are mean ± sd over seeds; PPL is exp(test NLL per target token).",
        findings.method_text(
            [METRICS[m].label for m in dict.fromkeys(leads.values())] or [METRICS[primary_metric].label],
            families,
            n_resamples,
            seeds,
            any(v.comparison.scope == SEEDS_ONLY for v in verdicts.values()),
            crossed=bool(designs),
        ),
    ]
    summary = [
        design_rows(designs[s.group], verdicts, leads[s.group])
        if s.group in designs
        else group_rows(s.group, s.rows, trials, verdicts, leads[s.group])
        for s in sections
    ]
    not_finished = [
        {
            "trial": row.trial,
            "status": row.status,
            "reason": _reason(row),
            "runs": [("run", row.run_id, context.link(row.run_id))],
        }
        for row in trials[trials["status"] != "finished"].itertuples()
    ]
    intro.append(f"Made by {ablab_version()}.")
    test_set = next(iter(sorted(set(runs.test_sets.values()))), "the test set")
    base = next((r for s in sections for r in s.rows if r["setting"] == record.BASELINE), None)
    return Report(
        f"ablab report: {runs.experiment}",
        [t for t in intro if t],
        sections,
        not_finished,
        search_rows(runs.searched),
        question=description,
        config=config_line(trials, test_set),
        summary=[g for g in summary if g.rows],
        baseline=baseline_row(base, trials) if base else None,
        method=[t for t in method if t]
        + ([findings.sequential_text(seed_design.looks)] if seed_design else []),
        looks=look_rows(looked) if not looked.empty else [],
        looks_figure=looks_figure(looked, context.colors, seed_design, out) if not looked.empty else None,
    )


def crossed_designs(
    trials: pd.DataFrame, groups: list[str], texts: dict[str, GroupText]
) -> dict[str, Design]:
    """The groups whose settings cross two or more factors, each read as its design."""
    designs = {}
    for group in groups:
        members = _members(trials, group)
        declared = texts.get(group, GroupText()).levels
        if crossed := design(group, members, varied_keys(members), declared=declared):
            designs[group] = crossed
    return designs


def group_leads(groups: list[str], texts: dict[str, GroupText], primary_metric: str) -> dict[str, str]:
    """Each group's primary metric: its own, else the report's."""
    return {g: texts.get(g, GroupText()).primary or primary_metric for g in groups}


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


def _members(trials: pd.DataFrame, group: str) -> pd.DataFrame:
    """The group's runs and the baseline's."""
    return trials[[group in gs or record.BASELINE in gs for gs in trials["groups"]]]


def _section(ctx: _Context, group: str, text: GroupText, reference_schedules) -> GroupSection:
    members = _members(ctx.trials, group)
    keys = varied_keys(members)
    crossed = ctx.designs.get(group)
    factors = [list(f.keys) for f in crossed.factors] if crossed else factors_of(members, keys)
    base = members[[record.BASELINE in gs for gs in members["groups"]]]
    arms = settings(members)
    changes = {s: change(base, members[members["setting"] == s], keys) for s in arms}
    summary = aggregate(members[members["status"] == "finished"], "setting", DESCRIPTIVE)
    lead = ctx.leads[group]
    calibration = "loss.label_smoothing" in keys or lead == "ece"
    compared = crossed is None  # a design's cells are not compared one by one with the baseline
    rows = [
        row(
            summary, members, s, changes.get(s, ""), ctx.verdicts, ctx.flagged, ctx.link,
            lead if compared else None, calibration,
        )
        for s in [record.BASELINE, *arms]
    ]  # fmt: skip
    section = GroupSection(
        group,
        text.question or questions.question(factors, group),
        [f"{s}: {c}" for s, c in changes.items() if c],
        [r for r in rows if r],
        expect=text.expect,
    )
    bleu_cells = None
    if crossed:
        mine, bleu_cells = _design_section(ctx, crossed, section, lead, members, keys, summary)
    else:
        mine = [ctx.verdicts[(s, m)] for s in arms for m in _lead_first(lead) if (s, m) in ctx.verdicts]
        section.comparisons = [findings.comparison_row(v) for v in mine]
        section.same_test_set = [r for v in mine if (r := findings.same_test_set_row(v))]
        sentences = [findings.sentence(ctx.verdicts[(s, lead)]) for s in arms if (s, lead) in ctx.verdicts]
        section.finding = findings.group_finding(sentences, members, summary, keys, ctx.flagged)
    section.to_resolve = [
        f"{v.setting} on {METRICS[v.comparison.metric].label}: {findings.seeds_to_resolve(v)}"
        for v in mine
        if v.word == INCONCLUSIVE
    ]
    section.samples = sample_rows(ctx.runs, members)
    if is_architecture(keys) and not crossed:
        section.architecture = architecture_rows(section.rows, members, ctx.runs.curves)
    reference_schedules = reference_schedules if "schedule.name" in keys else None
    section.figures = group_figures(
        ctx.runs,
        group,
        members,
        summary,
        keys,
        ctx.out,
        ctx.colors,
        reference_schedules,
        (crossed, bleu_cells) if crossed else None,
        {
            s: (v.comparison.delta, *v.simultaneous)
            for s in arms
            if (v := ctx.verdicts.get((s, "bleu"))) is not None and v.word in (DIFFERS, INCONCLUSIVE)
        },
    )
    return section


def _design_section(
    ctx: _Context, crossed: Design, section: GroupSection, lead: str, members, keys, summary
) -> tuple[list[Verdict], pd.DataFrame]:
    """A crossed group's factorial tables (its primary metric and BLEU), its effects' rows and
    finding. Returns the verdicts and the cells' BLEU (for the interaction plot)."""
    levels = " × ".join(
        f"{f.name} ({', '.join(f.label(v) for v in display_levels(f))})" for f in crossed.factors
    )
    section.design = (
        f"A {crossed.shape} factorial design: {levels}; {len(crossed.cells)} cells"
        + (
            ", the baseline's cell marked ◆."
            if crossed.baseline_cell
            else "; the baseline is not one of them."
        )
        + f" Each effect is a contrast of cell means (seeds paired), its reference {crossed.reference_rule}."
    )
    cells = {metric: cell_means(ctx.evidence, crossed, metric) for metric in dict.fromkeys([lead, "bleu"])}
    for metric, table in cells.items():
        section.cell_tables += cell_tables(table, crossed, metric)
    simple = {e.label: e for s in crossed.simple_effects() for e in s.effects}  # shown where judged
    mine, sentences = [], []
    for effect in [*crossed.contrasts(), *simple.values()]:
        for metric in _lead_first(lead):
            v = ctx.verdicts.get((f"{crossed.group}/{effect.label}", metric))
            if v is not None:
                mine.append(v)
                section.comparisons.append(findings.comparison_row(v, effect))
                if row := findings.same_test_set_row(v, effect):
                    section.same_test_set.append(row)
                if metric == lead:
                    sentences.append(findings.effect_sentence(v, effect))
    section.finding = findings.group_finding(sentences, members, summary, keys, ctx.flagged)
    return mine, cells["bleu"]


def _lead_first(lead: str) -> list[str]:
    """The metrics, the group's primary one first."""
    return [lead, *(m for m in METRICS if m != lead)]
