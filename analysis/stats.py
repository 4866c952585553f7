"""Statistics of a sweep: aggregation across seeds and significance against the baseline.

- Across seeds: mean, sample standard deviation (n - 1) and the 95 % interval of the mean,
  ``mean ± t_{0.975, n-1} · sd / √n`` (Student's t; none for n = 1).
- BLEU against the baseline: paired bootstrap resampling over test sentences (Koehn 2004),
  exactly as sacreBLEU's ``--paired-bs`` computes it: corpus BLEU (13a tokens, exponential
  smoothing) of each of ``n_samples`` resamples of the sentence indices, drawn with
  ``numpy.random.default_rng(seed).choice``; the statistic is the absolute BLEU difference;
  ``p = (#{|Δ_s| - mean|Δ| > |Δ|} + 1) / (n_samples + 1)``. With several seeds, the systems
  are the seeds' outputs concatenated, paired seed with seed and sentence with sentence, so
  the resampling covers the variation between seeds as well as between sentences.
- Any other metric against the baseline: Welch's t-test over seeds (two-sided), where both
  sides have at least two seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from scipy import stats as scipy_stats

MAX_ORDER = 4
NO_NGRAMS = -9999999999.0  # sacreBLEU's log of a precision with no n-grams of that order


def aggregate(table: pd.DataFrame, by: str | list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group: ``n`` and, for each metric, ``<m>_mean``, ``<m>_sd`` and ``<m>_ci95`` (the
    half-width of the 95 % interval of the mean). Missing values (e.g. a diverged run's BLEU)
    are left out of that metric's figures."""
    rows, keys = [], [by] if isinstance(by, str) else list(by)
    for key, group in table.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        row["n"] = len(group)
        for metric in metrics:
            values = group[metric].dropna().astype(float).to_numpy()
            mean, sd, half = summarize(values)
            row.update({f"{metric}_mean": mean, f"{metric}_sd": sd, f"{metric}_ci95": half})
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, sample sd and 95 % half-width of the mean (NaN where undefined)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, math.nan
    sd = float(values.std(ddof=1))
    return mean, sd, float(scipy_stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test; NaN with fewer than two values on a side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per sentence: hypothesis length, reference length, then matches and totals of 1..4-grams,
    on 13a tokens (shape ``(n, 2 + 2·4)``); their column sums are corpus BLEU's statistics."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    tokenize = Tokenizer13a()
    rows = np.zeros((len(hypotheses), 2 + 2 * MAX_ORDER))
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        h, r = tokenize(hyp.rstrip()).split(), tokenize(ref.rstrip()).split()
        rows[i, 0], rows[i, 1] = len(h), len(r)
        for n in range(1, MAX_ORDER + 1):
            h_grams, r_grams = _ngrams(h, n), _ngrams(r, n)
            rows[i, 1 + n] = sum(min(c, r_grams[g]) for g, c in h_grams.items())
            rows[i, 1 + MAX_ORDER + n] = max(len(h) - n + 1, 0)
    return rows


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_from_statistics(totals: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100) from summed statistics (shape ``(..., 10)``), sacreBLEU's formula:
    brevity penalty ``exp(1 - r/c)`` for ``c < r``, geometric mean of the n-gram precisions,
    a zero-match order smoothed to ``1 / (2^k · total)`` for its k-th such order ('exp'), an
    order with no n-grams at all scoring (almost) zero."""
    totals = np.atleast_2d(totals)
    sys_len, ref_len = totals[:, 0], totals[:, 1]
    matches, counts = totals[:, 2 : 2 + MAX_ORDER], totals[:, 2 + MAX_ORDER :]
    log_precision = np.zeros_like(matches)
    smooth = np.ones(len(totals))
    for n in range(MAX_ORDER):
        zero = matches[:, n] == 0
        smooth = np.where(zero, smooth * 2, smooth)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_precision[:, n] = np.where(
                zero, np.log(100.0 / (smooth * counts[:, n])), np.log(100.0 * matches[:, n] / counts[:, n])
            )
        log_precision[:, n] = np.where(counts[:, n] == 0, NO_NGRAMS, log_precision[:, n])
    with np.errstate(divide="ignore", invalid="ignore"):
        brevity = np.where(sys_len < ref_len, 1 - ref_len / np.maximum(sys_len, 1e-300), 0.0)
    score = np.exp(brevity + log_precision.mean(axis=1))
    return np.where((sys_len == 0) | (counts[:, 0] == 0), 0.0, score)


def paired_bootstrap(
    baseline: Sequence[str],
    system: Sequence[str],
    references: Sequence[str],
    n_samples: int = 1000,
    seed: int = 12345,
) -> dict[str, float]:
    """BLEU of both systems and the paired-bootstrap p-value of their difference (as
    sacreBLEU's ``--paired-bs`` with the same seed); also the 95 % interval of the system's BLEU
    over the resamples."""
    base, sys = bleu_statistics(baseline, references), bleu_statistics(system, references)
    indices = np.random.default_rng(seed).choice(len(references), size=(n_samples, len(references)))
    weights = np.zeros((n_samples, len(references)))
    np.add.at(weights, (np.arange(n_samples)[:, None], indices), 1.0)
    base_scores, sys_scores = bleu_from_statistics(weights @ base), bleu_from_statistics(weights @ sys)
    base_bleu, sys_bleu = bleu_from_statistics(base.sum(0))[0], bleu_from_statistics(sys.sum(0))[0]
    sample_diffs = np.abs(sys_scores - base_scores)
    exceed = np.sum(sample_diffs - sample_diffs.mean() > abs(base_bleu - sys_bleu))
    low, high = np.percentile(sys_scores, [2.5, 97.5])
    return {
        "baseline_bleu": float(base_bleu),
        "bleu": float(sys_bleu),
        "p_value": float((exceed + 1) / (n_samples + 1)),
        "ci_low": float(low),
        "ci_high": float(high),
    }


def format_p(p: float) -> str:
    """``p < 0.001``, ``p = 0.03``; '-' where there is no test."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
