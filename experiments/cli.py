"""The ``ablab`` command line.

Every command turns bad input (:class:`~ablab.trainer.errors.UserError`) into one paragraph on
stderr and exit code 2, before anything is written. With ``--json`` the last line on stdout
is a JSON object; progress goes to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from ablab.trainer.errors import Unavailable, UserError

app = typer.Typer(
    name="ablab",
    help="Ablation experiments for Transformers on Multi30k EN-DE, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"ablab: error: {message}", err=True)
    return typer.Exit(code)


TrackingUri = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI; default $MLFLOW_TRACKING_URI or sqlite under ./mlruns."),
]


def resolve_tracking_uri(value: str | None) -> str:
    """The URI given, made absolute, else the default store."""
    from ablab.trainer.tracking.store import absolute_uri, default_tracking_uri

    return absolute_uri(value) if value else default_tracking_uri()


def user_errors(command):
    """Report :class:`UserError` (exit code 2) and :class:`Unavailable` (exit code 1) as a clear
    message instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (UserError, Unavailable) as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper


@app.command("train")
@user_errors
def train_command(
    config: Annotated[Path, typer.Argument(help="Trainer config YAML (see experiments/configs/).")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a key: --set model.heads=8 (repeatable).")
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "ablab-train",
    workdir: Annotated[
        Path | None,
        typer.Option(help="Checkpoints and result; default runs/<config>-<hash>. Rerun to resume."),
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Delete the work directory first instead of resuming.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the final metrics as JSON (last stdout line).")
    ] = False,
    figures: Annotated[
        bool, typer.Option(help="Draw the run's figures onto its MLflow page at its end (a few CPU-seconds).")
    ] = True,
) -> None:
    """Train and evaluate one model; resumes from its work directory if interrupted."""
    from ablab.trainer.config.files import load, parse_override
    from ablab.trainer.config.schema import config_hash

    cfg = load(config, dict(parse_override(s) for s in set_ or []))  # bad input fails before torch loads
    from ablab.experiments.sweep.run_figures import log_run_figures
    from ablab.experiments.train_progress import TerminalReporter, result_summary
    from ablab.trainer.disk import check_store_writable, check_writable
    from ablab.trainer.run import train
    from ablab.trainer.tracking.mlflow_tracker import MlflowTracker

    workdir = (workdir or Path("runs") / f"{config.stem}-{config_hash(cfg)}").resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    uri = resolve_tracking_uri(tracking_uri)
    check_store_writable(uri)
    check_writable(workdir, "checkpoints")
    tracker = MlflowTracker(uri, experiment, run_name=config.stem)
    result = train(cfg, workdir=workdir, tracker=tracker, reporter=TerminalReporter(cfg))
    if figures:
        log_run_figures(uri, result.run_id)
    typer.echo(result_summary(result.metrics, workdir, uri), err=json_output)
    if result.run_id:
        typer.echo(f"MLflow run page: {_page(uri, experiment, result.run_id)}", err=json_output)
    if json_output:
        typer.echo(json.dumps(result.metrics))


def _page(uri: str, experiment: str, run_id: str | None = None) -> str:
    """The experiment's runs, or one run, in the MLflow UI (``ablab ui`` serves a local store)."""
    from mlflow import MlflowClient

    from ablab.trainer.tracking.record import ui_link

    found = MlflowClient(uri).get_experiment_by_name(experiment)
    page = ui_link(uri, found.experiment_id, run_id) if found else ""
    return page + ("  (ablab ui serves it)" if page and not uri.startswith("http") else "")


@app.command("plan")
@user_errors
def plan_command(
    spec: Annotated[Path, typer.Argument(help="Ablation spec YAML (see experiments/specs/).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the trials as a JSON list.")] = False,
    tflops: Annotated[
        float | None,
        typer.Option(help="Sustained TFLOP/s to estimate time with (a GPU's, say); default: measured here."),
    ] = None,
    mfu: Annotated[
        float | None,
        typer.Option(min=0.01, max=1.0, help="Assume this MFU of this machine's peak instead of measuring."),
    ] = None,
) -> None:
    """List the trials a spec expands to, with parameters, FLOPs, the precision each trial uses
    on this machine and its estimated time (from rates measured here in a few seconds)."""
    from ablab.experiments.spec.expand import load_plan

    plan = load_plan(spec)  # a bad spec fails before torch loads
    from ablab.experiments.planning.cost import estimate, plan_records

    records = plan_records(plan, estimate(plan, tflops * 1e12 if tflops else None, mfu))
    from ablab.experiments.planning.table import print_plan, seed_warning

    warning = seed_warning(len(plan.spec.initial_seeds))
    if warning:
        typer.echo(f"ablab: warning: {warning}", err=True)
    if json_output:
        typer.echo(json.dumps(records))
        return
    print_plan(plan, records, typer.echo)


StatusEvery = Annotated[
    float,
    typer.Option(
        min=0.1,
        help="Seconds between two looks at the running trials: redrawn in place on a terminal, "
        "printed every 4th look otherwise (a log file).",
    ),
]


@app.command("run")
@user_errors
def run_command(
    spec: Annotated[Path, typer.Argument(help="Ablation spec YAML (see experiments/specs/).")],
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (default $RAY_ADDRESS; none: Ray on this machine)."),
    ] = None,
    tracking_uri: TrackingUri = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted sweep from Tune's saved state.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Run every trial again, also those with finished runs.")
    ] = False,
    storage: Annotated[Path, typer.Option(help="Folder for Tune's state and trial checkpoints.")] = Path(
        "runs/sweeps"
    ),
    tflops: Annotated[
        float | None,
        typer.Option(
            help="The sustained TFLOP/s a trial should train at; default: measured on this machine."
        ),
    ] = None,
    status_every: StatusEvery = 30.0,
    quiet: Annotated[
        bool, typer.Option(help="No status of the running trials, only the sweep's events.")
    ] = False,
) -> None:
    """Run a spec's trials with Ray Tune; each trial is one MLflow run. Finished trials are skipped."""
    from ablab.experiments.spec.expand import Plan, load_plan

    plan = load_plan(spec)  # a bad spec fails before Ray and torch load
    from ablab.experiments.sweep.driver import Summary, run_sweep

    uri = resolve_tracking_uri(tracking_uri)

    def run_look(look: Plan, resume_look: bool) -> Summary:
        return run_sweep(
            look,
            storage=storage,
            tracking_uri=uri,
            address=address,
            resume=resume_look,
            force=force,
            tflops=tflops,
            echo=lambda line: typer.echo(line, err=True),
            status_every=None if quiet else status_every,
            live=sys.stderr.isatty(),
        )

    if plan.spec.design is None:
        summary = run_look(plan, resume)
    else:  # a sequential design: look after look, seeds only where a decision is pending
        from ablab.experiments.sweep.driver import interrupted
        from ablab.experiments.sweep.looks import run_looks

        if resume and not interrupted(plan, storage):  # it stopped between looks: replayed from its runs
            typer.echo(
                "no look of this sequential design was interrupted: it goes on from its runs", err=True
            )
            resume = False
        summary = run_looks(plan, run_look, uri, resume, lambda line: typer.echo(line, err=True))
    for name, trial in summary.trials.items():
        bleu = "-" if trial["bleu"] is None else f"{trial['bleu']:.2f}"
        error = f"  {trial['error']}" if trial["error"] and trial["status"] == "failed" else ""
        typer.echo(f"{trial['status']:>13}  BLEU {bleu:>6}  {name}  run {trial['run_id']}{error}")
    if summary.parent_run_id:
        typer.echo(f"parent run {summary.parent_run_id}; {len(summary.skipped)} trials skipped as done")
        typer.echo(f"MLflow runs: {_page(uri, plan.experiment)}")
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.seconds.items())
    typer.echo(f"took {sum(summary.seconds.values()):.1f} s: {phases}", err=True)
    if summary.interrupted:
        typer.echo(f"interrupted: continue with  ablab run {spec} --resume", err=True)
        raise typer.Exit(130)
    if summary.failed:
        raise typer.Exit(1)


@app.command("status")
@user_errors
def status_command(
    target: Annotated[str, typer.Argument(help="A spec YAML, or an MLflow experiment name (ablab/NAME).")],
    tracking_uri: TrackingUri = None,
    watch: Annotated[
        bool, typer.Option(help="Look again every --status-every seconds until it ends.")
    ] = False,
    status_every: StatusEvery = 30.0,
) -> None:
    """The newest sweep of a spec as it stands, read from MLflow (from any shell, also while it
    runs elsewhere): exit code 0 while it runs or when every trial is done, 1 when trials failed."""
    from ablab.experiments.sweep import status, status_view

    read = status.reader(target, resolve_tracking_uri(tracking_uri))
    say = functools.partial(typer.echo, err=True)
    state = status_view.show(read, say, status_every if watch else None, live=watch and sys.stderr.isatty())
    if state.count(status.KILLED) and state.ended:
        say(f"interrupted: continue with  ablab run {target} --resume")
    raise typer.Exit(1 if state.count(status.FAILED) else 0)


@app.command("report")
@user_errors
def report_command(
    target: Annotated[str, typer.Argument(help="A spec YAML, or an MLflow experiment name (ablab/NAME).")],
    tracking_uri: TrackingUri = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default reports/<the spec file's name>, or reports/<experiment name>)."
        ),
    ] = None,
    links: Annotated[
        bool,
        typer.Option(
            help="Link each run's MLflow page; --no-links writes run ids as text (a report to commit)."
        ),
    ] = True,
    export: Annotated[
        bool,
        typer.Option(
            help="Also write the runs the report reads to OUT/runs (no checkpoints): a committed "
            "report rebuilds from it with --from."
        ),
    ] = False,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Build from a runs export (a report's runs/ folder) instead of MLflow; no links, "
            "nothing logged.",
        ),
    ] = None,
) -> None:
    """Write the comparison report (report.html, report.md, figures/) and log it to the sweep's run."""
    from ablab.experiments.reporting import make_report

    uri = "" if source else resolve_tracking_uri(tracking_uri)  # an export needs no store
    made = make_report(target, uri, out, links=links, source=source, write_export=export)
    sections = ", ".join(s.group for s in made.report.sections)
    typer.echo(
        f"report of {len(made.report.sections)} sections ({sections}): {made.html} and {made.markdown}"
    )
    for section in made.report.sections:
        for figure in section.figures:
            for problem in figure.collisions:
                typer.echo(f"ablab: warning: text in figure {figure.name}: {problem}", err=True)
    for section in made.report.sections:  # what the inconclusive comparisons would need
        if section.to_resolve:
            typer.echo(f"{section.group}: seeds to resolve each inconclusive comparison (80 % power):")
            for line in section.to_resolve:
                typer.echo(f"  {line}")
    if made.parent_run_id:
        typer.echo(f"logged to the sweep's parent run {made.parent_run_id} under report/")


@app.command("ui")
@user_errors
def ui_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve the MLflow UI on.")] = 5000,
    host: Annotated[
        str, typer.Option(help="Interface to bind; the default serves this machine only (README: SSH).")
    ] = "127.0.0.1",
    tracking_uri: TrackingUri = None,
) -> None:
    """Serve the MLflow UI over the project's store, on 127.0.0.1 unless --host says otherwise.
    Ctrl-C or SIGTERM stops the server with it."""
    from ablab.experiments.mlflow_ui import serve

    raise typer.Exit(
        serve(resolve_tracking_uri(tracking_uri), host, port, lambda line: typer.echo(line, err=True))
    )


@app.command("import")
@user_errors
def import_command(
    source: Annotated[
        Path, typer.Argument(help="A runs export: a report's runs/ folder (ablab report --export).")
    ],
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the runs of an export into an MLflow store: to browse them in the MLflow UI, report
    them beside runs of this store, or go on with their sweep here (`ablab run` skips their trials)."""
    from ablab.analysis import export
    from ablab.analysis.into_store import NotImportable, import_runs
    from ablab.trainer.tracking.record import ui_link

    try:
        runs = export.read(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: {exc}") from None
    uri = resolve_tracking_uri(tracking_uri)
    try:
        done = import_runs(runs, uri)
    except NotImportable as exc:
        raise UserError(f"{source}: {exc}") from None
    typer.echo(f"imported {len(done.added)} runs into experiment {runs.experiment!r} of {uri}")
    if done.present:
        typer.echo(f"  already there, not imported again: {', '.join(done.present)}")
    if done.unfinished:
        more = len(done.unfinished) - 5
        named = ", ".join(done.unfinished[:5]) + (f" and {more} more" if more > 0 else "")
        typer.echo(f"  not finished when exported (queued, running or killed), left out: {named}")
    typer.echo(f"  browse: ablab ui, then {ui_link(uri, done.experiment_id)}")


@app.command("schedules")
@user_errors
def schedules_command(
    steps: Annotated[int, typer.Option(min=1, help="Steps to plot.")] = 100_000,
    out: Annotated[Path, typer.Option(help="Output folder for schedules.csv and schedules.png.")] = Path(
        "outputs/schedules"
    ),
) -> None:
    """Plot the reference schedules: Noam (warmup 4000, d 512), warmup+cosine/linear (2000, 3e-4)."""
    from ablab.analysis.figures import plot_schedules
    from ablab.experiments.schedule_table import reference_schedules_table

    table = reference_schedules_table(steps)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "schedules.csv", index=False)
    fig = plot_schedules(table)
    fig.savefig(out / "schedules.png", dpi=120, bbox_inches="tight")
    peaks = table.loc[table.groupby("schedule")["lr"].idxmax()]
    for row in peaks.itertuples():
        typer.echo(f"{row.schedule:>14}: peak lr {row.lr:.3e} at step {row.step}")
    typer.echo(f"wrote {out / 'schedules.csv'} and {out / 'schedules.png'}")


def main() -> None:  # pragma: no cover - console entry point
    # MLflow draws a progress bar for every artifact it reads back (a run's summary, a report):
    # noise among the command's own lines
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
