"""Token-level calibration: reliability bins and expected calibration error (ECE).

Conventions (Guo et al. 2017; Müller, Kornblith, Hinton 2019): for each non-pad target token
under teacher forcing, confidence = the maximum softmax probability and correct = whether the
argmax is the gold token. Confidences fall into ``n_bins`` equal-width bins
``(b/n, (b+1)/n]`` (the first bin also takes 0). With ``N`` tokens in all,

    ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)|

where ``acc`` is the share correct and ``conf`` the mean confidence of the bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin token counts, mean confidence and accuracy (NaN for empty bins)."""

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        total = self.count.sum()
        if total == 0:
            return float("nan")
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.count[filled] / total * gaps).sum())

    def to_records(self) -> list[dict[str, float]]:
        return [
            {
                "bin": b,
                "lower": float(lo),
                "upper": float(hi),
                "count": int(n),
                "confidence": float(c),
                "accuracy": float(a),
            }
            for b, (lo, hi, n, c, a) in enumerate(
                zip(self.lower, self.upper, self.count, self.confidence, self.accuracy, strict=True)
            )
        ]


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin token confidences ``(N,)`` in ``[0, 1]`` with their correctness ``(N,)``."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(index, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return ReliabilityBins(edges[:-1], edges[1:], count, mean_conf, accuracy)
