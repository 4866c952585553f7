"""The report's first screen: one line of the baseline's configuration, and one table of every
primary comparison of every group, each row what changed, the model's size, BLEU over the seeds
(mean ± sd and each seed's), the difference on the group's primary metric with the simultaneous
interval its verdict is read from, the verdict, and how many runs were still improving."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ablab.analysis import findings
from ablab.analysis.cells import MISSING, Badge, Number
from ablab.analysis.factorial import Design
from ablab.analysis.metrics import METRICS
from ablab.analysis.verdicts import PRIMARY, Verdict
from ablab.trainer.tracking import record

COLUMNS = ("arm", "changed", "params", "BLEU", "BLEU per seed", "Δ [simultaneous interval]", "verdict")
"""The summary table's columns besides 'still improving' (eight in all)."""


@dataclass(frozen=True)
class SummaryGroup:
    """One group's rows of the summary table, under a heading naming its primary metric."""

    group: str
    metric: str  # the label of the group's primary metric, which Δ and the verdict are on
    rows: list[dict]


CONFIG_PARTS = (
    (("model.layers", "{} layers"), ("model.d_model", "d_model {}"), ("model.heads", "{} heads"),
     ("model.ff_dim", "feed-forward {}"), ("model.norm", "{}-norm"), ("model.dropout", "dropout {:g}")),
    (("optim.name", "{}"), ("optim.lr", "lr {:.4g}"), ("schedule.name", "{}"),
     ("schedule.warmup_steps", "warmup {}")),
    (("data.train_subset", "{:,} training pairs"), ("data.vocab_size", "BPE {:,}"),
     ("data.max_tokens", "batches of {:,} tokens"), ("eval.beam_size", "beam {}"),
     ("eval.test_sentences", "{:,} test sentences")),
)  # fmt: skip
"""The baseline's settings the config line names, by part (model; optimisation; data and decoding)."""
TRANSFORMER_ONLY = ("model.heads", "model.ff_dim", "model.norm")


def config_line(trials: pd.DataFrame, test_set: str) -> str:
    """The baseline's configuration in one line (the settings of :data:`CONFIG_PARTS` it logged)."""
    base = trials[[record.BASELINE in g for g in trials["groups"]]]
    if "model.arch" in base.columns:
        base = base[base["model.arch"].notna()]
    if base.empty:
        return ""
    c = base.iloc[0]
    arch = {"transformer": "Transformer", "seq2seq": "GRU seq2seq"}.get(c.get("model.arch"), "")
    parts = []
    for part in CONFIG_PARTS:
        words = [
            text.format(_whole(c[key]))
            for key, text in part
            if _set(c.get(key)) and not (arch != "Transformer" and key in TRANSFORMER_ONLY)
        ]
        parts.append(", ".join(words))
    languages = f"{c['data.src_lang']}→{c['data.tgt_lang']}" if _set(c.get("data.src_lang")) else ""
    head = ", ".join(w for w in (arch, parts[0]) if w)
    tail = "; ".join(w for w in (parts[1], ", ".join(w for w in (languages, parts[2]) if w)) if w)
    line = "; ".join(w for w in (head, tail) if w)
    return f"Baseline: {line}; test set {test_set}." if line else ""


def _whole(value):
    """A whole number as an integer: a column of the trials' table holds floats where a run that
    never started has no value, and 3 layers would read "3.0 layers"."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _set(value) -> bool:
    return value is not None and not pd.isna(value)


def per_seed(runs: pd.DataFrame, metric: str = "bleu") -> Number:
    """Each finished seed's value, in seed order: ``27.9, 28.3, 27.6``."""
    done = runs[runs["status"] == "finished"].sort_values("seed")
    values = [f"{v:.{METRICS[metric].digits - 1}f}" for v in done[metric] if not pd.isna(v)]
    return Number(", ".join(values) or MISSING)


def baseline_row(settings_row: dict, trials: pd.DataFrame) -> dict:
    """The reference every arm is compared with, as the summary's first row."""
    base = trials[trials["setting"] == record.BASELINE]
    return _row(settings_row, base, Number(MISSING), Badge(MISSING, "none"))


def group_rows(
    group: str, settings: list[dict], trials: pd.DataFrame, verdicts: dict, lead: str
) -> SummaryGroup:
    """A group of arms: each arm's settings row (from the group's table) and its verdict on the
    group's primary metric ``lead``."""
    rows = []
    for row in settings:
        if row["setting"] == record.BASELINE:
            continue
        v: Verdict | None = verdicts.get((row["setting"], lead))
        runs = trials[
            (trials["setting"] == row["setting"]).to_numpy() & [group in g for g in trials["groups"]]
        ]
        delta = findings.delta_cell(v) if v else Number(MISSING)
        rows.append(_row(row, runs, delta, findings.verdict_cell(v) if v else Badge(MISSING, "none")))
    return SummaryGroup(group, METRICS[lead].label, rows)


def design_rows(crossed: Design, verdicts: dict, lead: str) -> SummaryGroup:
    """A crossed group: its main effects and interactions (and simple effects where judged) on the
    primary metric, each named by its kind; an effect has no model size or BLEU of its own."""
    simple = {e.label: e for s in crossed.simple_effects() for e in s.effects}
    rows = []
    for effect in [*crossed.contrasts(), *simple.values()]:
        v = verdicts.get((f"{crossed.group}/{effect.label}", lead))
        if v is None or v.family_name != PRIMARY:
            continue
        rows.append(
            {
                "arm": effect.label,
                "changed": effect.kind,
                **dict.fromkeys(COLUMNS[2:5], Number(MISSING)),
                "Δ [simultaneous interval]": findings.delta_cell(v),
                "verdict": findings.verdict_cell(v),
                "still improving": Number(MISSING),
            }
        )
    return SummaryGroup(crossed.group, METRICS[lead].label, rows)


def _row(settings_row: dict, runs: pd.DataFrame, delta: Number, verdict: Badge) -> dict:
    return {
        "arm": settings_row["setting"],
        "changed": settings_row["changed"],
        "params": settings_row["params"],
        "BLEU": settings_row["BLEU"],
        "BLEU per seed": per_seed(runs),
        "Δ [simultaneous interval]": delta,
        "verdict": verdict,
        "still improving": settings_row["still improving"],
    }
