"""The factorial tables of a crossed group: each cell's mean over seeds with its 95 % interval
(seeds and sentences, as the design's effects, :mod:`ablab.analysis.factorial`), laid out as
the first factor's levels by the second's."""

from __future__ import annotations

import math

import pandas as pd

from ablab.analysis import findings
from ablab.analysis.cells import Number
from ablab.analysis.factorial import Design, cell_estimates
from ablab.analysis.metrics import METRICS
from ablab.analysis.verdicts import Evidence


def cell_means(evidence: Evidence, crossed: Design, metric: str) -> pd.DataFrame:
    """Each cell's mean over seeds and its 95 % interval (seeds and sentences, as the effects)."""

    def estimate(setting: str) -> dict | None:
        c = evidence.contrast(metric, {setting: 1.0}, {})
        if c is None:
            return None
        low, high = c.interval(0.95)
        return {"mean": c.delta, "low": low, "high": high, "seeds": len(c.seeds)}

    return cell_estimates(crossed, estimate)


def cell_tables(cells: pd.DataFrame, crossed: Design, metric: str) -> list[tuple[str, list[dict]]]:
    """The factorial table of one metric: the first factor's levels as rows, the second's as
    columns, a table per level combination of the others; a cell is ``mean [95 % interval]``."""
    m = METRICS[metric]
    rows_f, cols_f, *rest = crossed.factors
    out = []
    for panel, part in cells.groupby([f.name for f in rest], sort=False) if rest else [((), cells)]:
        where = "; ".join(f"{f.name} = {v}" for f, v in zip(rest, panel, strict=True))
        caption = f"{m.label}: mean over seeds [95 % interval], rows {rows_f.name}, columns {cols_f.name}" + (
            f"; {where}" if where else ""
        )
        table = []
        for row_level, line in part.groupby(rows_f.name, sort=False):
            row: dict = {rows_f.name: row_level}
            for r in line.to_dict("records"):
                mean = r.get("mean", math.nan)
                text = "-"
                if not pd.isna(mean):
                    bounds = findings.interval((r["low"], r["high"]), m.digits, signed=False)
                    text = f"{findings.number(mean, m.digits)} {bounds}"
                row[f"{cols_f.name} = {r[cols_f.name]}"] = Number(text + (" ◆" if r["baseline"] else ""))
            table.append(row | {"runs": []})
        out.append((caption, table))
    return out
