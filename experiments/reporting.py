"""``ablab report``: a spec's (or an experiment's) runs made into the comparison report.

The analysis package reads MLflow only; what it needs from elsewhere is gathered here: the seed
reference schedule comparison, and the spec's group order and description. The report is written to
``out`` and logged to the sweep's parent run under ``report/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ablab.analysis import export, render, report
from ablab.analysis.bootstrap import RESAMPLES
from ablab.analysis.load import NoRuns, load, of_seeds
from ablab.analysis.verdicts import DEFAULT_PRIMARY
from ablab.experiments.schedule_table import reference_schedules_table
from ablab.trainer.errors import UserError
from ablab.trainer.tracking import record


@dataclass(frozen=True)
class Made:
    markdown: Path
    html: Path
    report: report.Report
    parent_run_id: str | None


@dataclass(frozen=True)
class Target:
    """What the report needs from a spec besides the runs: the experiment, the group order, the
    description, the primary metric and each group's question, expectation and primary metric
    (an experiment name gives none: BLEU is then the primary metric)."""

    experiment: str
    groups: list[str]
    description: str = ""
    texts: dict[str, report.GroupText] | None = None
    primary_metric: str = DEFAULT_PRIMARY
    design: object = None  # a sequential design over seeds (ablab.analysis.sequential.Design)
    seeds: list[int] | None = None  # a spec's fixed seeds: the report covers these
    spec_file: str | None = None  # the spec's file: its report goes to its own sweep run and folder


def target_experiment(target: str) -> Target:
    """The report's :class:`Target` from a SPEC path or an EXPERIMENT name."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from ablab.experiments.spec.expand import load_plan
        from ablab.experiments.sweep.mlflow_runs import group_question

        plan = load_plan(path)
        texts = {
            name: report.GroupText(
                group_question(plan, name),
                group.expect or "",
                group.primary_metric or "",
                group.declared_levels(),
            )
            for name, group in plan.spec.ablations.items()
        }
        spec = plan.spec
        return Target(
            plan.experiment,
            list(spec.ablations),
            spec.description or "",
            texts,
            spec.primary_metric,
            spec.design,
            None if spec.design else list(spec.seeds),
            path.name,
        )
    return Target(target if target.startswith("ablab/") else f"ablab/{target}", [])


EXPORT = "runs"  # the export's folder beside a report


def make_report(
    target: str,
    tracking_uri: str,
    out: Path | None,
    n_resamples: int = RESAMPLES,
    links: bool = True,
    source: Path | None = None,
    write_export: bool = False,
) -> Made:
    """The report of ``target``'s runs, read from the store at ``tracking_uri``, or from the runs
    export ``source`` (:mod:`ablab.analysis.export`; no store then: no links, nothing logged);
    ``write_export``: also write the runs' export to ``out/runs``."""
    found = target_experiment(target)
    experiment = found.experiment
    if source is not None:
        runs, links = _from_export(source, experiment), False
    else:
        try:
            runs = load(tracking_uri, experiment, found.spec_file)
        except NoRuns as exc:
            raise UserError(f"{exc}; run the sweep first (ablab run SPEC) or check --tracking-uri.") from None
    left_out = []
    if found.seeds is not None:
        runs, left_out = of_seeds(runs, found.seeds)
        if runs.trials.empty and left_out:
            raise UserError(
                f"{target} lists seeds {', '.join(map(str, found.seeds))}, and `{experiment}` holds runs "
                f"of seeds {', '.join(map(str, left_out))} only: run the spec first (ablab run SPEC), or "
                f"report the experiment's runs by its name (ablab report {experiment})."
            )
    default = Path(found.spec_file).stem if found.spec_file else experiment.removeprefix("ablab/")
    out = (out or Path("reports") / default).resolve()
    try:
        made = report.build(
            runs,
            out,
            groups=found.groups,
            reference_schedules=reference_schedules_table(100_000),
            description=found.description,
            n_resamples=n_resamples,
            links=links,
            texts=found.texts,
            primary_metric=found.primary_metric,
            seed_design=found.design,
            note=_scope_note(left_out, _added_by_looks(runs) if found.design is None else 0, experiment),
        )
    except report.NothingToReport as exc:
        raise UserError(str(exc)) from None
    markdown, page = render.write(made, out)
    if write_export:  # after the report: a sweep with nothing to report leaves no export behind
        export.write(runs, out / EXPORT)
    if runs.parent_run_id:  # none in an export
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
        client.log_artifacts(runs.parent_run_id, str(out), "report")
        link = record.ui_link(tracking_uri, runs.experiment_id, runs.parent_run_id, "report/report.html")
        _link_report(client, runs.experiment_id, runs.parent_run_id, link)
    return Made(markdown, page, made, runs.parent_run_id)


def _added_by_looks(runs) -> int:
    """Runs a sequential design added after its first look (tag ``ablab.look`` above 1)."""
    looks = runs.trials.get("look")
    return 0 if looks is None else int((looks.fillna(1) > 1).sum())


def _scope_note(left_out: list[int], added: int, experiment: str) -> str:
    """What the report says of runs in its experiment it leaves out, or reads as planned when a
    sequential design chose them (seeds added where earlier seeds left a comparison undecided)."""
    if left_out:
        listed = ", ".join(map(str, left_out))
        return (
            f"Runs of seed{'s' if len(left_out) > 1 else ''} {listed} in `{experiment}` are left out: the "
            "spec does not list them (a sequential design's added seeds are chosen by what earlier seeds "
            "showed; its own spec reports them)."
        )
    if added:
        return (
            f"{added} run{'s were' if added > 1 else ' was'} added by a sequential design after its first "
            "look, where earlier seeds left a comparison undecided; read here as if planned, so the "
            "verdicts do not hold the design's error rate: report the experiment with the spec that ran it."
        )
    return ""


def _from_export(source: Path, experiment: str):
    try:
        runs = export.read(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"--from {source}: {exc}") from None
    if runs.experiment != experiment:
        raise UserError(
            f"--from {source}: the export holds experiment {runs.experiment!r}, the spec names "
            f"{experiment!r}; give the spec the export was made from"
        )
    return runs


REPORT_LINE = "The comparison report:"


def _link_report(client, experiment_id: str, parent_run_id: str, link: str) -> None:
    """Point the experiment's and the sweep run's descriptions at the report just logged."""
    line = f"{REPORT_LINE} [report/report.html]({link}), made {time.strftime('%Y-%m-%d %H:%M')}."

    def relinked(note: str | None) -> str:
        kept = [text for text in (note or "").splitlines() if not text.startswith(REPORT_LINE)]
        return "\n".join([*kept, line]).strip()

    experiment = client.get_experiment(experiment_id)
    client.set_experiment_tag(experiment_id, record.NOTE, relinked(experiment.tags.get(record.NOTE)))
    parent = client.get_run(parent_run_id)
    client.set_tag(parent_run_id, record.NOTE, relinked(parent.data.tags.get(record.NOTE)))
