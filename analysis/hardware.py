"""What each run computed in and on, and which comparisons mix them.

Every run records the precision its ``train.precision`` resolved to and the kind of device it
trained on, the GPU's name or the CPU's model with its instruction set
(:data:`ablab.trainer.tracking.record.PRECISION`, :data:`ablab.trainer.tracking.record.DEVICE_KIND`;
``a + b`` where a resumed
run changed them). Runs in different precisions, or on different kinds of hardware, differ in
more than the ablation: in their numerics (bf16 rounds where fp32 does not) and in every
figure of time. A comparison whose runs span more than one precision or device kind is
therefore *confounded by hardware*: it gets no verdict (:mod:`ablab.analysis.verdicts`), and the
group's table and finding say which runs trained on what.

Runs recorded before ablab wrote these tags carry their precision only where the config
named one (``train.precision`` other than ``auto``) and no device kind: a part that is
unknown is not counted as a difference, since nothing says the runs differ in it.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ("precision", "device_kind")


def label(precision: str | None, device_kind: str | None) -> str:
    """``bf16 on AMD EPYC (AVX512-BF16)``; ``?`` for a part a run did not record."""
    return f"{_known(precision) or '?'} on {_known(device_kind) or 'unrecorded hardware'}"


def _known(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) or value == "" else value


def mixed(rows: pd.DataFrame) -> bool:
    """Whether ``rows`` (runs) trained in more than one known precision or on more than one
    known device kind."""
    return any(
        len({v for v in rows[column] if _known(v) is not None}) > 1 for column in COLUMNS if column in rows
    )


def labels(rows: pd.DataFrame) -> pd.Series:
    """Each run's :func:`label` (a table without the columns: every part unrecorded)."""
    parts = [rows[c] if c in rows else pd.Series([None] * len(rows), index=rows.index) for c in COLUMNS]
    return pd.Series([label(p, d) for p, d in zip(*parts, strict=True)], index=rows.index, dtype=object)


def runs_text(rows: pd.DataFrame, most_first: bool = False) -> str:
    """Each kind the runs trained on with its number of runs: ``bf16 on X (2 runs), fp32 on Y
    (1 run)``, in the order met (or the most common first)."""
    counts = labels(rows).value_counts(sort=most_first)
    return ", ".join(f"{k} ({n} run{'s' if n != 1 else ''})" for k, n in counts.items())


def kinds_text(rows: pd.DataFrame, by: str = "setting") -> str:
    """What the runs trained on, ``by`` setting: ``baseline: bf16 on X (3 runs); arm: fp32 on Y
    (2 runs), bf16 on X (1 run)``."""
    return "; ".join(f"{name}: {runs_text(group)}" for name, group in rows.groupby(by, sort=False))


def intro_text(rows: pd.DataFrame) -> str:
    """The report's hardware line: every kind the runs trained on, with its number of runs."""
    confounded = "; comparisons across them are confounded by hardware and get no verdict"
    return f"Hardware: {runs_text(rows, most_first=True)}{confounded if mixed(rows) else ''}."
