"""How a searched spec chose its values: per point, what the search sampled with the first seed,
what it scored, and the values the confirmation seeds then ran with (the runs compared).

The chosen values are read from the confirmation runs themselves (their ``ablab.search.*`` tags),
not recomputed: they are what was run. A point whose search had no finished sample has no
confirmation runs and says so. A chosen number that is the largest or smallest the search tried
says so (``optim.lr 0.002595, the largest tried``): the best may lie beyond it, and "each at its
best value" holds only within what was tried.
"""

from __future__ import annotations

import pandas as pd


def _values_text(values: dict) -> str:
    """``{'optim.lr': 0.0012345}`` -> ``optim.lr 0.001234``: four significant digits, as the
    comparison tables show a sampled value (:func:`ablab.analysis.factorial.shown`)."""
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(values.items())
    )


def _at_an_edge(chosen: dict, samples: pd.DataFrame) -> str:
    """``, the largest tried`` (or smallest) for each number of ``chosen`` at an end of the values
    the search tried for it (of at least three; a sample that failed, which says nothing of its
    value, is not counted); '' where none is."""
    tried_samples = samples.loc[samples["status"] != "failed", "values"]
    notes = []
    for key, value in sorted(chosen.items()):
        if not _number(value):
            continue
        tried = {v[key] for v in tried_samples if _number(v.get(key))}
        if len(tried) >= 3 and value in (max(tried), min(tried)):
            end = "largest" if value == max(tried) else "smallest"
            notes.append(f"{key} the {end} tried" if len(chosen) > 1 else f"the {end} tried")
    return "".join(f", {note}" for note in notes)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def search_rows(searched: pd.DataFrame) -> list[dict]:
    """One row per searched point: its samples (best first, by the search's own metric) and the
    values its other seeds ran with."""
    if searched.empty:
        return []
    rows = []
    for setting, runs in searched.groupby("setting", sort=False):
        samples = runs[runs["role"] == "search"]
        metric, mode = samples["metric"].iloc[0], samples["mode"].iloc[0]
        samples = samples.sort_values("score", ascending=mode == "min", na_position="last")
        confirm = runs[runs["role"] == "confirm"]
        tried = "; ".join(
            f"{_values_text(r.values)}: {'-' if pd.isna(r.score) else f'{r.score:.2f}'}"
            + ("" if r.status == "finished" else f" ({r.status})")
            for r in samples.itertuples()
        )
        if not confirm.empty:
            chosen = _values_text(confirm["values"].iloc[0]) + _at_an_edge(confirm["values"].iloc[0], samples)
        elif samples["score"].notna().any():
            chosen = "not confirmed (no other seed ran)"
        else:
            chosen = "none (no sample finished)"
        seeds = ", ".join(map(str, sorted(set(samples["seed"]))))
        rows.append(
            {
                "point": setting,
                f"samples (seed {seeds}; value: {metric}, best first)": tried or "-",
                "chosen": chosen,
                "confirmed with seeds": ", ".join(map(str, sorted(confirm["seed"]))) or "-",
            }
        )
    return rows
