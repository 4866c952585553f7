"""What each run computed in and on, and which comparisons mix them.

Every run records the precision its ``train.precision`` resolved to and the kind of device it
trained on, the GPU's name or the CPU's model with its instruction set
(:data:`ablab.trainer.tracking.record.PRECISION`, :data:`ablab.trainer.tracking.record.DEVICE_KIND`;
``a + b`` where a resumed run changed them).

Runs that differ in what they computed in differ in more than the ablation: a comparison across
them is *confounded by hardware* (:func:`confounded`): it gets no verdict
(:mod:`ablab.analysis.verdicts`), and the group's table and finding say which runs trained on
what. Two runs compute alike when they trained in the same precision on the same kind of device,
or both in fp32 on CPUs of any instruction set: IEEE single precision on every CPU, whose kernels
differ only in the order they sum in and the last bit of vectorised functions: rounding with
no direction. The same seed's fp32 training on two instruction sets agrees to about 1e-6 over
its first updates, a thousandth of what the same seed in bf16 differs by (``tests/trainer/
test_numerics_across_cpus.py``); bf16 rounds every matmul's inputs, and native and emulated bf16
round in different places, so bf16 runs compute alike only on one kind of CPU, and GPU runs
only on one GPU model (TF32, fused kernels). Runs on different kinds of device differ in every
figure of time in any case (:func:`mixed`): the group's table then says what each trained on.

Runs recorded before ablab wrote these tags carry their precision only where the config
named one (``train.precision`` other than ``auto``) and no device kind: a part that is
unknown is not counted as a difference, since nothing says the runs differ in it (a CPU run of
unknown precision counts as computing alike with fp32 CPU runs).
"""

from __future__ import annotations

import pandas as pd

from ablab.trainer.hardware.device import names_a_cpu

COLUMNS = ("precision", "device_kind")


def label(precision: str | None, device_kind: str | None) -> str:
    """``bf16 on AMD EPYC (AVX512-BF16)``; ``?`` for a part a run did not record."""
    return f"{_known(precision) or '?'} on {_known(device_kind) or 'unrecorded hardware'}"


def _known(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) or value == "" else value


def mixed(rows: pd.DataFrame) -> bool:
    """Whether ``rows`` (runs) trained in more than one known precision or on more than one
    known device kind: their figures of time differ with the hardware."""
    return any(_differ(rows[column]) for column in COLUMNS if column in rows)


def confounded(rows: pd.DataFrame) -> bool:
    """Whether ``rows`` (runs) differ in what they computed: in a known precision, or in a known
    device kind unless every such run trained in fp32 on CPUs (see the module's docstring)."""
    if not mixed(rows):
        return False
    if "precision" in rows and _differ(rows["precision"]):
        return True
    computers = [
        "CPU" if precision in ("fp32", None) and all(names_a_cpu(k) for k in kind.split(" + ")) else kind
        for precision, kind in zip(
            map(_known, rows.get("precision", [None] * len(rows))), rows["device_kind"], strict=True
        )
        if _known(kind) is not None
    ]
    return len(set(computers)) > 1


def _differ(values) -> bool:
    return len({v for v in values if _known(v) is not None}) > 1


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
    if confounded(rows):
        note = "; comparisons across them are confounded by hardware and get no verdict"
    elif mixed(rows):
        note = "; all in fp32 on CPUs, which compute alike, so comparisons stand; their times do not compare"
    else:
        note = ""
    return f"Hardware: {runs_text(rows, most_first=True)}{note}."
