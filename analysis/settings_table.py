"""A group's table of settings, one row per setting, in the layout of Vaswani et al. 2017's Table 3:
what changed, seeds, BLEU, the difference on the group's primary metric with its verdict, size and
the runs still improving; calibration, perplexity, time, hardware and the runs' links beside them
(the report shows those in a table of details, :data:`DETAILS`)."""

from __future__ import annotations

import math

import pandas as pd

from ablab.analysis import findings, hardware
from ablab.analysis.cells import MISSING, Badge, Number
from ablab.analysis.factorial import shown
from ablab.analysis.metrics import METRICS
from ablab.analysis.stats import format_pm
from ablab.trainer.tracking import record

IGNORED_KEYS = {"train.seed", "train.threads", "data.dir", "data.cache_dir"}
DETAILS = ("ECE", "PPL", "train min", "trained on")
"""Columns of a settings row shown in the table of details, not in the group's table."""


def varied_keys(rows: pd.DataFrame) -> list[str]:
    """Config keys (dotted columns) whose values differ among the rows that logged a config (a
    run that never started has none)."""
    if "model.arch" in rows.columns:
        rows = rows[rows["model.arch"].notna()]
    return [
        column
        for column in rows.columns
        if "." in column and column not in IGNORED_KEYS and shown(rows[column]).nunique() > 1
    ]


def settings(members: pd.DataFrame) -> list[str]:
    """The group's settings other than the baseline, in trial order."""
    return [s for s in dict.fromkeys(members["setting"]) if s != record.BASELINE]


def change(base: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> str:
    """``model.heads 4 → 1``: how a setting's config differs from the baseline's."""
    if "model.arch" in rows.columns:  # a run that never started logged no config
        base, rows = base[base["model.arch"].notna()], rows[rows["model.arch"].notna()]
    if base.empty or rows.empty:
        return ""
    both = pd.concat([base.iloc[:1], rows.iloc[:1]])
    pairs = [(k, *shown(both[k]).tolist()) for k in keys]
    return ", ".join(f"{k} {before} → {after}" for k, before, after in pairs if before != after)


def row(
    summary: pd.DataFrame,
    members: pd.DataFrame,
    setting: str,
    changed: str,
    verdicts: dict,
    flagged: dict[str, str],
    link,
    lead: str | None,
    calibration: bool,
) -> dict | None:
    """A setting as a row: given the group's primary metric ``lead`` (its cells are compared with
    the baseline), the difference on it with the verdict; ECE where the group is about
    calibration; ``runs``: each run's (label, id, link)."""
    runs = members[members["setting"] == setting]
    if runs.empty:
        return None
    found = summary[summary["setting"] == setting]
    s = found.iloc[0] if len(found) else pd.Series(dtype=float)
    diverged = (runs["status"] == "diverged").sum()
    finished = runs[runs["status"] == "finished"]
    out = {
        "setting": setting,
        "changed": "(reference)" if setting == record.BASELINE else changed or MISSING,
        "seeds": Number(f"{int(s.get('n', 0))}/{len(runs)}" + (f", {diverged} diverged" if diverged else "")),
        "BLEU": format_pm(s, "bleu", 2),
    }
    if lead is not None:
        verdict = verdicts.get((setting, lead))
        out[f"Δ {METRICS[lead].label} [simultaneous interval]"] = (
            findings.delta_cell(verdict) if verdict else Number(MISSING)
        )
        out["verdict"] = findings.verdict_cell(verdict) if verdict else Badge(MISSING, "none")
    params = s.get("params_mean", math.nan)
    out |= {
        "params": Number(MISSING if pd.isna(params) else f"{params / 1e6:.2f} M"),
        "still improving": Number(f"{sum(r in flagged for r in finished['run_id'])}/{len(finished)}"),
    }
    if calibration:
        out["ECE"] = format_pm(s, "ece", 3)
    out |= {"PPL": format_pm(s, "ppl", 2), "train min": format_pm(s, "train_seconds", 1, scale=1 / 60)}
    if hardware.mixed(members[members["status"].isin(record.DONE)]):  # the group's table says so
        out["trained on"] = hardware.runs_text(runs[runs["status"].isin(record.DONE)])
    out["runs"] = [(f"seed {r.seed}", r.run_id, link(r.run_id)) for r in runs.itertuples()]
    return out


ARCHITECTURE = {"model.layers": "N", "model.d_model": "d_model", "model.ff_dim": "d_ff", "model.heads": "h"}
"""The keys of an architecture and their names in Table 3 of Vaswani et al. (2017)."""
ARCHITECTURE_KEYS = {*ARCHITECTURE, "model.arch"}
ARCHITECTURE_DETAILS = ("changed", "seeds", "still improving", *DETAILS)
"""An architecture group's details: its table shows the architecture instead."""
GRU_LACKS = ("model.ff_dim", "model.heads")
"""Architecture keys a GRU seq2seq model does not use (its layers and hidden size are N, d_model)."""
FINAL_POINTS = 10
"""Logged points at the end of a run whose training NLL is averaged into its final one (each the
mean over its ``log_every`` updates; in older runs, the logged update's own)."""


def is_architecture(keys: list[str]) -> bool:
    """Whether a group varies only the model's shape (and so reads best as Vaswani's Table 3)."""
    return bool(keys) and set(keys) <= ARCHITECTURE_KEYS


def architecture_rows(rows: list[dict], members: pd.DataFrame, curves: pd.DataFrame) -> list[dict]:
    """The group's settings as Table 3 of Vaswani et al. (2017) lays them out: the architecture
    (those of N, d_model, d_ff, h that differ between its settings, as the paper leaves the
    unchanged ones blank; '-' where a GRU has none), parameters, the final training NLL (mean of
    each seed's last :data:`FINAL_POINTS` logged points), the best validation BLEU (greedy), test
    perplexity and BLEU over seeds, and the difference on the primary metric with its verdict."""
    nll = curves[curves["metric"] == "train/nll"].sort_values("step")
    final_nll = nll.groupby("run_id")["value"].apply(lambda v: v.tail(FINAL_POINTS).mean())
    out = []
    for row in rows:
        runs = members[(members["setting"] == row["setting"]) & (members["status"] == "finished")]
        first = runs.iloc[0] if len(runs) else pd.Series(dtype=object)
        gru = first.get("model.arch") == "seq2seq"
        shape = {
            name: Number(MISSING if gru and key in GRU_LACKS else _integer(first.get(key)))
            for key, name in ARCHITECTURE.items()
        }
        trained = final_nll.reindex(runs["run_id"]).dropna()
        dev = runs["best_val_bleu"].dropna() if "best_val_bleu" in runs else pd.Series(dtype=float)
        out.append(
            {
                "setting": row["setting"],
                **shape,
                "params": row["params"],
                "train NLL": Number(f"{trained.mean():.2f}" if len(trained) else MISSING),
                "dev BLEU": Number(f"{dev.mean():.2f}" if len(dev) else MISSING),
                "test PPL": row["PPL"],
                "BLEU": row["BLEU"],
                **{k: v for k, v in row.items() if k.startswith("Δ ") or k == "verdict"},
                "runs": row["runs"],
            }
        )
    varied = [n for n in ARCHITECTURE.values() if len({r[n] for r in out}) > 1]
    return [{k: v for k, v in r.items() if k not in ARCHITECTURE.values() or k in varied} for r in out]


def _integer(value) -> str:
    return MISSING if value is None or pd.isna(value) else f"{int(value)}"
