"""What budget a result was obtained at, and which runs were still improving when it ended.

A trial is flagged *still improving when the budget ended* when its best validation BLEU came
in its last validation, or when its validation loss was still falling: its lowest validation
loss came in its last validation. Validation BLEU on a few hundred sentences is noisy, so a
curve that still rises can show its best one validation early; the loss, averaged over every
target token of those sentences, moves smoothly, and a lowest-at-the-end loss is a curve still
going down. Only finished runs are judged (a trial a search scheduler stopped early did not
end at its budget); a run with fewer than two validations cannot be judged.

A group where more than half the trials are flagged compares what the budget allows each
setting to reach, not the settings at convergence; the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

STILL_IMPROVING = "still improving when the budget ended"
PAUSE_SECONDS = 600.0  # a longer gap in a run's log is a pause, not wall time it trained


def still_improving(val_bleu: Sequence[float], val_loss: Sequence[float]) -> str | None:
    """Why a run with these validation curves (in order) was still improving at its end, or None."""
    reasons = []
    if len(val_bleu) >= 2 and val_bleu[-1] >= max(val_bleu[:-1]):
        reasons.append("best validation BLEU in its last validation")
    if len(val_loss) >= 2 and val_loss[-1] < min(val_loss[:-1]):
        reasons.append("validation loss still falling")
    return "; ".join(reasons) or None


def flags(trials: pd.DataFrame, curves: pd.DataFrame) -> dict[str, str]:
    """Run id -> why it was still improving, for the finished runs that were."""
    out = {}
    finished = trials[trials["status"] == "finished"]
    for run_id in finished["run_id"]:
        rows = curves[curves["run_id"] == run_id]
        series = {
            metric: rows[rows["metric"] == metric].sort_values("step")["value"].tolist()
            for metric in ("val/bleu", "val/loss")
        }
        reason = still_improving(series["val/bleu"], series["val/loss"])
        if reason:
            out[run_id] = reason
    return out


def most_flagged(run_ids: Sequence[str], flagged: dict[str, str]) -> bool:
    """More than half of these runs were still improving."""
    return len(run_ids) > 0 and sum(r in flagged for r in run_ids) * 2 > len(run_ids)


def budget_text(trials: pd.DataFrame) -> str:
    """The updates and epochs the finished runs trained for: one figure, or their range."""
    done = trials[trials["status"] == "finished"].dropna(subset=["steps"])
    if done.empty:
        return "no finished run"
    steps, epochs = done["steps"].astype(int), done["epochs"].astype(float)

    def span(values, fmt) -> str:
        low, high = values.min(), values.max()
        return format(low, fmt) if low == high else f"{format(low, fmt)}–{format(high, fmt)}"

    return f"{span(steps, ',d')} updates ({span(epochs, '.1f')} epochs)"


def compute_text(trials: pd.DataFrame, curves: pd.DataFrame) -> str:
    """The compute the runs spent, from each run's own clocks (see :func:`ablab.trainer.run.final_metrics`):
    trial-minutes = Σ over runs of (setup + training with validation + test evaluation) / 60, and
    the part of it in forward, backward and update. Runs without clocks (not run, or stopped
    before their end) are left out and counted. Then the wall time in which they trained
    (:func:`wall_hours`)."""
    clocks = trials.reindex(columns=["setup_seconds", "wall_seconds", "eval_seconds", "train_seconds"])
    clocked = clocks.dropna(subset=["wall_seconds"]).astype(float)
    if clocked.empty:
        return "no run recorded its clocks"
    spent = clocked[["setup_seconds", "wall_seconds", "eval_seconds"]].fillna(0.0)
    text = (
        f"{spent.to_numpy().sum() / 60:,.1f} trial-minutes over {len(clocked)} runs (setup, training "
        f"with validation, and test evaluation), {clocked['train_seconds'].sum() / 60:,.1f} "
        "of them in forward, backward and update"
    )
    missing = len(trials) - len(clocked)
    text += f"; {missing} not counted (no clocks: not run, or stopped before the end)" if missing else ""
    if (hours := wall_hours(curves)) is not None:
        text += (
            f"; runs were training during {hours:,.2f} h of wall time (pauses over "
            f"{PAUSE_SECONDS / 60:.0f} minutes in a run's log not counted)"
        )
    return text


def wall_hours(curves: pd.DataFrame, pause: float = PAUSE_SECONDS) -> float | None:
    """Hours of wall time in which at least one run was training: the union over runs of the spans
    between its consecutive logged points, a gap longer than ``pause`` seconds (a sweep paused,
    a machine restarted) splitting a run's span. Each run's test evaluation logs no curve point,
    so it is not counted. None when no point carries its time."""
    if "time" not in curves or curves["time"].isna().all():
        return None
    spans = []
    for _, times in curves.dropna(subset=["time"]).groupby("run_id")["time"]:
        t = times.sort_values().to_numpy()
        breaks = [0, *(np.flatnonzero(np.diff(t) > pause) + 1), len(t)]
        spans += [(t[a], t[b - 1]) for a, b in pairwise(breaks)]
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total / 3600
