"""Token-level calibration: reliability bins and expected calibration error (ECE).

Conventions (Guo et al. 2017; Müller, Kornblith, Hinton 2019): for each non-pad target token
under teacher forcing, confidence = the maximum softmax probability and correct = whether the
argmax is the gold token. Confidences fall into ``n_bins`` equal-width bins
``(b/n, (b+1)/n]`` (the first bin also takes 0). With ``N`` tokens in all,

    ECE = sum_b (|B_b| / N) * |acc(B_b) - conf(B_b)| = sum_b |correct_b - confidence_b| / N

where ``acc`` is the share correct and ``conf`` the mean confidence of the bin, and
``correct_b``, ``confidence_b`` the bin's summed correctness and confidence. The second form
needs only per-bin sums, so per-sentence sums (:func:`sentence_bin_sums`) can be resampled
sentence by sentence and ECE recomputed from them exactly.
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


def sentence_bin_sums(
    confidence: np.ndarray, correct: np.ndarray, sentence: np.ndarray, n_sentences: int, n_bins: int = 15
) -> np.ndarray:
    """Per sentence and bin, shape ``(n_sentences, 3, n_bins)``: the number of tokens, their summed
    confidence and their summed correctness. ``sentence`` ``(N,)`` names each token's sentence."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    cell = np.asarray(sentence, dtype=np.int64) * n_bins + index
    size = n_sentences * n_bins
    sums = [
        np.bincount(cell, minlength=size),
        np.bincount(cell, weights=confidence, minlength=size),
        np.bincount(cell, weights=correct, minlength=size),
    ]
    return np.stack([s.reshape(n_sentences, n_bins) for s in sums], axis=1).astype(np.float64)


def bins_from_sums(sums: np.ndarray) -> ReliabilityBins:
    """Reliability bins from summed ``(3, n_bins)`` token counts, confidences and correctness."""
    count, conf_sum, acc_sum = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    edges = np.linspace(0.0, 1.0, sums.shape[1] + 1)
    return ReliabilityBins(edges[:-1], edges[1:], count.astype(np.int64), mean_conf, accuracy)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin token confidences ``(N,)`` in ``[0, 1]`` with their correctness ``(N,)``."""
    one_sentence = np.zeros(len(np.asarray(confidence)), dtype=np.int64)
    return bins_from_sums(sentence_bin_sums(confidence, correct, one_sentence, 1, n_bins)[0])
