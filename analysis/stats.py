"""Descriptive statistics of a sweep: aggregation across seeds, and how p-values are written.

Across seeds: mean, sample standard deviation (n - 1) and the 95 % interval of the mean,
``mean ± t_{0.975, n-1} · sd / √n`` (Student's t; none for n = 1). The comparisons against
the baseline are in :mod:`ablab.analysis.bootstrap`, their verdicts in :mod:`ablab.analysis.verdicts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ablab.analysis.cells import MISSING, Number


def aggregate(table: pd.DataFrame, by: str | list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group: ``n`` and, for each metric, ``<m>_mean``, ``<m>_sd`` and ``<m>_ci95`` (the
    half-width of the 95 % interval of the mean). Missing values (e.g. a diverged run's BLEU)
    are left out of that metric's figures."""
    rows, keys = [], [by] if isinstance(by, str) else list(by)
    for key, group in table.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        row["n"] = len(group)
        for metric in metrics:
            values = group[metric].dropna().astype(float).to_numpy()
            mean, sd, half = summarize(values)
            row.update({f"{metric}_mean": mean, f"{metric}_sd": sd, f"{metric}_ci95": half})
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, sample sd and 95 % half-width of the mean (NaN where undefined)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, math.nan
    sd = float(values.std(ddof=1))
    return mean, sd, float(scipy_stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


ALPHA = 0.05
"""The level a verdict is read at: 'differs' where Holm's adjusted p is at most ALPHA."""
P_SHOWN_FLOOR = 1e-4
"""Smaller p-values are written ``p < 0.0001``: that far into a t distribution's tail the value
says more about the normal model than about the runs (a t with estimated degrees of freedom
printed 1e-52 for a 3-seed comparison)."""


def format_p(p: float | None, floor: float | None = None, name: str = "p") -> str:
    """``p = 0.03``, ``p = 0.004``, ``p = 2.1e-04``, ``p < 0.0001`` (below
    :data:`P_SHOWN_FLOOR`); a resampling p-value at its floor ``1/(B + 1)`` is written
    ``p ≤ 1/(B + 1)``, since resampling cannot tell smaller values apart; '-' where there is no
    test. With ``name`` empty, the value alone (``0.03``, ``≤ 1/1,001``). A p that two decimals
    would write as the level :data:`ALPHA` gets four (``0.0504``, ``0.0496``): "0.05" beside
    'inconclusive' reads as a contradiction."""
    if p is None or math.isnan(p):
        return "-"
    if floor is not None and p <= floor * (1 + 1e-9):
        value = f"≤ 1/{round(1 / floor):,}"
    elif p < P_SHOWN_FLOOR:
        value = f"< {P_SHOWN_FLOOR:.4f}"
    else:
        value = f"= {p:.1e}" if p < 0.001 else f"= {p:.3f}" if p < 0.01 else f"= {p:.2f}"
        if value == f"= {ALPHA:.2f}" and p != ALPHA:
            value = f"= {p:.4f}"
    return f"{name} {value}" if name else value.removeprefix("= ")


def format_pm(s: pd.Series, metric: str, digits: int, scale: float = 1.0) -> Number:
    """``mean ± sd`` of a metric of an aggregated row, '-' where there is no value."""
    mean, sd = s.get(f"{metric}_mean", math.nan), s.get(f"{metric}_sd", math.nan)
    if mean is None or pd.isna(mean):
        return Number(MISSING)
    text = f"{mean * scale:.{digits}f}"
    return Number(text if sd is None or pd.isna(sd) else f"{text} ± {sd * scale:.{digits}f}")
