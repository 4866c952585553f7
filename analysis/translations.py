"""Sample translations: the first sentences of the test set, their reference, and how the baseline
and each arm of a group translated them (each setting's lowest finished seed), so that a reader
sees what a difference in BLEU looks like."""

from __future__ import annotations

import pandas as pd

from ablab.analysis.load import SweepRuns
from ablab.trainer.tracking import record


def sample_rows(runs: SweepRuns, members: pd.DataFrame) -> list[dict]:
    """Rows ``source``, ``reference``, then one per setting (baseline first), a column per
    sentence; empty where no run of the group kept its samples."""
    done = members[members["status"] == "finished"].sort_values("seed")
    first = {s: rows["run_id"].iloc[0] for s, rows in done.groupby("setting", sort=False)}
    settings = [record.BASELINE, *(s for s in first if s != record.BASELINE)]
    kept = {s: runs.samples[first[s]] for s in settings if s in first and runs.samples.get(first[s])}
    if not kept:
        return []
    reference = next(iter(kept.values()))
    columns = [f"sentence {i + 1}" for i in range(len(reference))]

    def row(name: str, texts: list[str]) -> dict:
        return {"": name, **dict(zip(columns, texts, strict=False))}

    rows = [
        row("source", [s["source"] for s in reference]),
        row("reference", [s["reference"] for s in reference]),
    ]
    return rows + [row(setting, [s["hypothesis"] for s in samples]) for setting, samples in kept.items()]
