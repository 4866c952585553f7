"""Corpus metrics recomputed from summed per-sentence statistics, vectorized over resamples.

Every test metric of a run is a function of column sums of its per-sentence statistics (the
``statistics/<test set>.npz`` artifact the trainer logs; layout in :mod:`ablab.trainer.evaluation.evaluate`).
Resampling test sentences is then a weighted sum of rows, and the score of each resample
one call of the functions here on an array ``(..., columns)`` of sums:

- BLEU (sacreBLEU, ``exp`` smoothing): ``BP · exp(mean_n log p_n)`` with ``BP = exp(1 - r/c)``
  for ``c < r``; an order with zero matches scores ``1 / (2^k · total)`` for its k-th such
  order, an order with no n-grams at all (almost) zero.
- chrF (sacreBLEU, β = 2, character orders 1..6, no word n-grams): per order precision and
  recall, averaged over the orders where hypothesis and reference both have n-grams, then
  ``F_β = (1 + β²)·P·R / (β²·P + R)``.
- test NLL: summed NLL over summed target tokens (nats per token).
- ECE: ``Σ_b |correct_b − confidence_b| / N`` over the bins' summed correctness and confidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MAX_ORDER = 4
NO_NGRAMS = -9999999999.0  # sacreBLEU's log of a precision with no n-grams of that order
CHRF_ORDERS = 6
CHRF_BETA = 2.0


def bleu_from_statistics(sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100) from summed ``(..., 10)`` statistics: hypothesis length, reference
    length, matches of 1..4-grams, totals of 1..4-grams."""
    sums = np.asarray(sums, dtype=np.float64)
    sys_len, ref_len = sums[..., 0], sums[..., 1]
    matches, counts = sums[..., 2 : 2 + MAX_ORDER], sums[..., 2 + MAX_ORDER :]
    log_precision = np.zeros_like(matches)
    smooth = np.ones(sums.shape[:-1])
    for n in range(MAX_ORDER):
        zero = matches[..., n] == 0
        smooth = np.where(zero, smooth * 2, smooth)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(
                zero,
                np.log(100.0 / (smooth * counts[..., n])),
                np.log(100.0 * matches[..., n] / counts[..., n]),
            )
        log_precision[..., n] = np.where(counts[..., n] == 0, NO_NGRAMS, value)
    with np.errstate(divide="ignore", invalid="ignore"):
        brevity = np.where(sys_len < ref_len, 1 - ref_len / np.maximum(sys_len, 1e-300), 0.0)
    score = np.exp(brevity + log_precision.mean(axis=-1))
    return np.where((sys_len == 0) | (counts[..., 0] == 0), 0.0, score)


def chrf_from_statistics(sums: np.ndarray) -> np.ndarray:
    """Corpus chrF (0-100) from summed ``(..., 18)`` statistics: hypothesis, reference and
    matching character n-grams of each order 1..6."""
    sums = np.asarray(sums, dtype=np.float64).reshape(*np.shape(sums)[:-1], CHRF_ORDERS, 3)
    hyp, ref, match = sums[..., 0], sums[..., 1], sums[..., 2]
    effective = (hyp > 0) & (ref > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(effective, match / hyp, 0.0)
        recall = np.where(effective, match / ref, 0.0)
    orders = effective.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(orders > 0, precision.sum(axis=-1) / orders, 0.0)
        r = np.where(orders > 0, recall.sum(axis=-1) / orders, 0.0)
        factor = CHRF_BETA**2
        score = (1 + factor) * p * r / (factor * p + r)
    return np.where(p + r > 0, 100 * score, 0.0)


def nll_from_statistics(sums: np.ndarray) -> np.ndarray:
    """NLL per target token from summed ``(..., 2)``: NLL in nats, target tokens."""
    sums = np.asarray(sums, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[..., 0] / sums[..., 1]


def ece_from_statistics(sums: np.ndarray) -> np.ndarray:
    """ECE from summed ``(..., 3·bins)`` statistics: per bin, tokens, then summed confidence,
    then summed correctness (the trainer's ``(3, bins)`` flattened)."""
    sums = np.asarray(sums, dtype=np.float64)
    count, confidence, correct = np.split(sums, 3, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(correct - confidence).sum(axis=-1) / count.sum(axis=-1)


@dataclass(frozen=True)
class Metric:
    """A test metric the report compares: how to score summed statistics, and how to show it."""

    name: str  # the run's metric key, as MLflow shows it
    label: str
    statistics: str  # the array of the statistics artifact
    score: Callable[[np.ndarray], np.ndarray]
    higher_is_better: bool
    digits: int


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("bleu", "BLEU", "bleu", bleu_from_statistics, True, 2),
        Metric("bleu_lc", "BLEU (lowercased)", "bleu_lc", bleu_from_statistics, True, 2),
        Metric("chrf", "chrF", "chrf", chrf_from_statistics, True, 2),
        Metric("ece", "ECE", "calibration", ece_from_statistics, False, 4),
        Metric("test_nll", "test NLL", "nll", nll_from_statistics, False, 3),
    )
}
"""The metrics every arm is compared on, in the order the report lists them."""
