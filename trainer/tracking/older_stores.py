"""Runs that older ablab wrote, read in today's names: the one place that knows an older store.

Before the names of :mod:`ablab.trainer.tracking.record`, a run logged its curves under the
trainer's own keys (``train_loss``, ``val_bleu``, ...), its validation points at the validation
count with the update step beside them in ``epoch_step`` (and ``epoch`` at that count too), and its
final metrics under bare names (``bleu``, ``params``, ``epochs``). Those names are frozen here:
today's may change, an older store's cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RENAMED = {
    "train_loss": "train/loss",
    "train_nll": "train/nll",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tgt_tokens_per_s": "train/tokens_per_s",
    "val_loss": "val/loss",
    "val_ppl": "val/ppl",
    "val_bleu": "val/bleu",
}
"""An older store's curve names -> today's."""
AT_VALIDATION_COUNT = ("val_loss", "val_ppl", "val_bleu")
"""Its curves logged at the validation count, not at the update step."""
EPOCH_STEP = "epoch_step"
"""Its metric that held, at each validation count, the update step."""


def final_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The final metrics an older run logged under bare names (``bleu``, ``params``; its curves
    left out). Of a run of today, only its last ``epoch``."""
    return {k: v for k, v in metrics.items() if "/" not in k and k not in RENAMED and k != EPOCH_STEP}


def curves(
    history: Callable[[str], list], keys: set[str], epoch_at: dict[int, float]
) -> tuple[dict[str, list], dict[int, float]]:
    """An older run's curves under today's names, each point at its update step, and the epoch at
    each update step (``epoch_at`` is by validation count there); ``({}, epoch_at)`` for a run of
    today. ``history(key)``: the run's MLflow metric history of ``key``."""
    older = [key for key in RENAMED if key in keys]
    if not older:
        return {}, epoch_at
    step_of = {m.step: int(m.value) for m in history(EPOCH_STEP)}
    epoch_at = {step_of[count]: epoch for count, epoch in epoch_at.items() if count in step_of}
    renamed: dict[str, Any] = {}
    for key in older:
        points = history(key)
        if key in AT_VALIDATION_COUNT:
            points = [type(m)(m.key, m.value, m.timestamp, step_of.get(m.step)) for m in points]
        renamed[RENAMED[key]] = points
    return renamed, epoch_at
