"""What ``ablab plan`` prints: a table of the trials (overrides, hash, parameters, FLOPs,
estimated time, resources), a line per crossed group, a searched spec's number of runs, and the
estimated total."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable

from experiments.plan import search_runs


def crossed_groups(plan) -> list[str]:
    """A line per crossed group: its grid of factor levels, cells and trials."""
    lines = []
    for name, group in plan.spec.ablations.items():
        factors = [f for f in group.factors() if len(f.levels) > 1]  # one arm crosses nothing
        if len(factors) < 2:
            continue
        trials = [t for t in plan.trials if name in t.groups]
        merged = any("baseline" in t.groups for t in trials)
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
    for column in ("trial", "overrides", "hash", "params", "TFLOPs", "est. time", "cpus/gpus"):
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
            "-" if seconds is None else f"{seconds / 60:,.1f} min",
            f"{r['resources']['cpus']:g}/{r['resources']['gpus']:g}",
        )
    Console(width=shutil.get_terminal_size((160, 24)).columns).print(table)
    for line in crossed_groups(plan):
        echo(line)
    total = sum(r["est_seconds"] or 0 for r in records) / 60
    if plan.spec.search:
        runs, line = search_runs(plan)
        echo(line)
        total *= runs / len(records)
    when = f"{total / 60:.1f} h" if total >= 60 else f"{total:.1f} min"
    echo(f"total estimated trial time {when} (one after another, at this machine's estimated rate)")
