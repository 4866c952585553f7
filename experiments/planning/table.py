"""What ``ablab plan`` prints: a table of the trials (overrides, hash, parameters, FLOPs, the
precision each resolves to here, estimated time, resources), a line per crossed group, a
searched spec's number of runs, and the estimated trial time and sweep time on this machine."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable

from ablab.experiments.planning.cost import DEFAULT_MFU, lanes, search_runs, sweep_seconds
from ablab.trainer.tracking import record


def crossed_groups(plan) -> list[str]:
    """A line per crossed group: its grid of factor levels, cells and trials."""
    lines = []
    for name, group in plan.spec.ablations.items():
        factors = [f for f in group.factors() if len(f.levels) > 1]  # one arm crosses nothing
        if len(factors) < 2:
            continue
        trials = [t for t in plan.trials if name in t.groups]
        merged = any(record.BASELINE in t.groups for t in trials)
        lines.append(
            f"{name}: a {' × '.join(str(len(f.levels)) for f in factors)} factorial design, "
            + " × ".join(f"{f.name} [{', '.join(f.levels)}]" for f in factors)
            + f" = {math.prod(len(f.levels) for f in factors)} cells"
            + (" (the baseline's among them)" if merged else "")
            + f", {len(trials)} trials; the report gives its main effects and interactions"
        )
    return lines


def print_plan(plan, records: list[dict], echo: Callable[[str], None]) -> None:
    """The trials table, a line per crossed group, the search's runs and the estimated total."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{plan.spec.name}: {len(records)} trials (experiment {plan.experiment}, spec {plan.hash})"
    )
    for column in ("trial", "overrides", "hash", "params", "TFLOPs", "precision", "est. time", "cpus/gpus"):
        table.add_column(column, justify="right" if column in ("params", "TFLOPs", "est. time") else "left")
    for r in records:
        overrides = ", ".join(f"{k}={v}" for k, v in r["overrides"].items() if k != "train.seed") or "-"
        seconds = r["est_seconds"]
        table.add_row(
            r["name"],
            overrides,
            r["hash"],
            f"{r['params']:,}",
            "-" if r["flops"] is None else f"{r['flops'] / 1e12:,.1f}",
            r["precision"] + (" (emulated here: 10-20x slower)" if r["precision_emulated"] else ""),
            "-" if seconds is None else f"{seconds / 60:,.1f} min",
            f"{r['resources']['cpus']:g}/{r['resources']['gpus']:g}",
        )
    Console(width=shutil.get_terminal_size((160, 24)).columns).print(table)
    for line in crossed_groups(plan):
        echo(line)
    for line in estimate_lines(plan, records):
        echo(line)
    for line in sequential_lines(plan, records):
        echo(line)


def sequential_lines(plan, records: list[dict]) -> list[str]:
    """A sequential design's looks, and the most runs (and time) its later looks can add: every
    setting to its most seeds, or the spec's ``max_runs``."""
    design = plan.spec.design
    if design is None:
        return []
    per_setting: dict[str, list[float]] = {}
    for r in records:
        per_setting.setdefault(record.setting_of(r["name"]), []).append(r["est_seconds"] or 0.0)
    most = len(per_setting) * design.maximum
    cap = min(most, plan.spec.max_runs) if plan.spec.max_runs else most
    more = max(0, cap - len(records))
    seconds = sum(sum(times) / len(times) * (design.maximum - len(times)) for times in per_setting.values())
    capped = f" (max_runs {plan.spec.max_runs})" if plan.spec.max_runs and plan.spec.max_runs < most else ""
    return [
        f"sequential seeds: looks at {', '.join(map(str, design.looks))} seeds; these {len(records)} "
        f"trials are the first look; later looks add seeds only to comparisons still undecided, at "
        f"most {more} more runs{capped}, about {seconds / 60:,.0f} more trial-minutes if every "
        f"setting went to {design.maximum} seeds"
    ]


def estimate_lines(plan, records: list[dict]) -> list[str]:
    """How the times were estimated, the trials' total and the sweep's wall time on this machine."""
    known = [r["est_seconds"] for r in records if r["est_seconds"] is not None]
    lines = []
    measured = sum(r["rate_measured"] for r in records)
    if len(known) < len(records):
        lines.append(
            f"{len(records) - len(known)} trials ask for a GPU this machine does not have: no time "
            "estimate for them here (--tflops gives one from the GPU's sustained rate)"
        )
    if known:
        lines.append(_rate_source(measured, len(known)))
    scale = 1.0
    if plan.spec.search:
        runs, line = search_runs(plan)
        lines.append(line)
        scale = runs / len(records)
    if known:
        at_once = lanes(plan)
        total, wall = sum(known) * scale, sweep_seconds(known, at_once) * scale
        lines.append(
            f"total estimated trial time {_duration(total)}; the sweep on this machine, {at_once} "
            f"trial{'s' if at_once > 1 else ''} at once: about {_duration(wall)}"
        )
    return lines


def _rate_source(measured: int, known: int) -> str:
    if measured == known:
        return "times from training and decoding rates measured on this machine for every trial's model"
    if measured:
        return (
            f"times from rates measured on this machine for {measured} of {known} trials, "
            "the others at the MFU those reached"
        )
    return f"times at the rate given (--tflops, --mfu), or at MFU {DEFAULT_MFU} of this machine's peak"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 60 else f"{minutes:.1f} min"


def seed_warning(seeds: int) -> str | None:
    """Why a spec with fewer than 3 seeds cannot support conclusions across training runs."""
    if seeds >= 3:
        return None
    what = "one seed: its report compares outputs on the test set only" if seeds == 1 else f"{seeds} seeds"
    return (
        f"the spec has {what}; differences smaller than the seed spread cannot be told from noise. "
        "Use 3 seeds or more (seeds: [1, 2, 3]) for verdicts across training runs."
    )
