"""Arm against baseline across training runs and test sentences: the effect, its interval, p.
(The same for any linear contrast of systems, e.g. a factorial design's main effects and
interactions: :func:`contrast`.)

A conclusion generalises over two things a repetition of the experiment would change: the
training runs (seeds) and the test sentences. For one metric, with ``n`` seeds that both the
arm and the baseline finished (paired by seed value; a seed only one side has is left out),

    Δ = mean over seeds of the arm's corpus score − mean over seeds of the baseline's,

and its variance has the components of a crossed seeds × sentences design:

    Var(Δ) = V_seed + V_sent,   V_seed = s²_d / n,   V_sent = (n·V_all − V_each) / (n − 1).

- Seed level (resampled in closed form): ``d_s`` is seed s's difference on the whole test set
  and ``s²_d`` its sample variance. Resampling n seeds with replacement gives the mean a
  variance of ``(n − 1)/n · s²_d/n``; ``s²_d/n`` is its unbiased version. It holds the seeds'
  own variation and each seed's sentence-level noise.
- Sentence level (resampled): ``B`` resamples of the test sentences' indices, the same indices
  for every run of a report in a replicate; each run's corpus scores are recomputed from its
  per-sentence sufficient statistics under the resample (never single tokens).
  ``V_all`` is the resamples' variance of Δ, ``V_each`` the mean over seeds of the variance of
  one seed's difference. ``V_all`` counts the seed × sentence noise a second time (``V_seed``
  already holds it) and ``V_each`` counts it n times, so the combination above keeps only
  what the sentences share across seeds: how the two systems differ on this sample of
  sentences, the part a new test set would change (clipped at 0).

Interval and p-value: ``|Δ|/SE`` against Welch's critical function ``c_ν(ρ̂; α)`` of the
seeds' estimated share ``ρ̂ = V_seed/(V_seed + V_sent)`` and ``ν = n − 1``
(:mod:`ablab.analysis.critical`, which says why not Satterthwaite's degrees of freedom): the
interval at level L is ``Δ ± c_ν(ρ̂; 1 − L)·SE`` and p the α at which ``c_ν(ρ̂; α)`` equals
``|Δ|/SE``, calibrated at every level Holm uses (``benchmarks/stats_calibration.py``). With
no sentence part (one sentence per seed, or no per-sentence statistics) ``c`` is Student's
``t_{n−1}``: the paired t-test over seeds. With one seed there is no seed level: the comparison
covers test-set variation only, with the percentile interval of the resampled differences and
sacreBLEU's paired-bootstrap p-value (Koehn 2004), whose floor is ``1/(B + 1)``.

What the seed controls, and so why seeds pair: a run's seed fixes its parameters'
initialisation, the order of its batches and its dropout masks, so seed s of the arm and seed
s of the baseline see the same data order from the same start; their difference cancels what
the two share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ablab.analysis import critical
from ablab.analysis.metrics import METRICS, Metric

RESAMPLES = 10_000
SEED = 12345  # sacreBLEU's default, so one seed's comparison equals its --paired-bs
CHUNK = 1000  # resamples scored at once (memory: CHUNK x sentences x columns)

SEEDS_AND_SENTENCES = "seeds and test sentences"
TEST_SET_ONLY = "test set only (one seed)"
SEEDS_ONLY = "seeds only (no per-sentence statistics)"


def sentence_resamples(n_sentences: int, n_resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(B, n)`` sentence indices drawn with replacement, as sacreBLEU's paired bootstrap draws
    them (``numpy.random.default_rng(seed).choice``)."""
    return np.random.default_rng(seed).choice(n_sentences, size=(n_resamples, n_sentences), replace=True)


@dataclass
class Resampled:
    """Every run's scores on the whole test set and on the same ``B`` sentence resamples."""

    full: dict[tuple[str, str], float]  # (run id, metric) -> score on the test set
    replicates: dict[tuple[str, str], np.ndarray]  # (run id, metric) -> (B,) scores
    n_sentences: int
    n_resamples: int


def resample_runs(
    statistics: dict[str, dict[str, np.ndarray]],
    metrics: tuple[Metric, ...] = tuple(METRICS.values()),
    n_resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Resampled:
    """Score every run (run id -> per-sentence statistics, all on one test set) on the whole test
    set and on ``n_resamples`` shared resamples of its sentences."""
    sizes = {len(next(iter(s.values()))) for s in statistics.values()}
    if len(sizes) > 1:
        raise ValueError(f"runs were tested on different numbers of sentences: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    out = Resampled({}, {}, n, n_resamples)
    blocks = []  # (metric, runs, columns per run): one matrix of every run's statistics side by side
    for metric in metrics:
        have = [r for r in statistics if metric.statistics in statistics[r]]
        if have:
            blocks.append((metric, have, statistics[have[0]][metric.statistics].reshape(n, -1).shape[1]))
    if not blocks:
        return out
    table = np.concatenate(
        [statistics[r][metric.statistics].reshape(n, -1) for metric, have, _ in blocks for r in have], axis=1
    )
    indices = sentence_resamples(n, n_resamples, seed)
    scores: dict[tuple[str, str], list[np.ndarray]] = {}
    for start in [None, *range(0, n_resamples, CHUNK)]:  # None: the test set itself, not resampled
        if start is None:
            sums = table.sum(0, keepdims=True)
        else:
            rows = indices[start : start + CHUNK]
            flat = (rows + n * np.arange(len(rows))[:, None]).ravel()
            sums = np.bincount(flat, minlength=len(rows) * n).reshape(len(rows), n).astype(np.float64) @ table
        offset = 0
        for metric, have, columns in blocks:
            block = sums[:, offset : offset + len(have) * columns].reshape(len(sums), len(have), columns)
            offset += len(have) * columns
            for run, column in zip(have, metric.score(block).T, strict=True):
                scores.setdefault((run, metric.name), []).append(column)
    for key, parts in scores.items():
        out.full[key] = float(parts[0][0])
        out.replicates[key] = np.concatenate(parts[1:])
    return out


def sacrebleu_p(differences: np.ndarray, observed: float) -> float:
    """sacreBLEU's paired-bootstrap p-value: the share of resamples whose centred absolute
    difference ``|Δ*| − mean|Δ*|`` exceeds ``|Δ|``, as ``(count + 1) / (B + 1)``."""
    spread = np.abs(differences)
    exceed = np.sum(spread - spread.mean() > abs(observed))
    return float((exceed + 1) / (len(differences) + 1))


@dataclass(frozen=True)
class Comparison:
    """One contrast on one metric: an arm against the baseline, or a design's effect (``arm``
    and ``baseline`` then hold the contrast's two parts)."""

    metric: str
    seeds: tuple[int, ...]  # the paired seeds compared
    baseline: float  # mean over those seeds
    arm: float
    delta: float  # arm - baseline
    se: float
    p: float
    scope: str
    better_seeds: int  # paired seeds in which the arm is better (d_s on the metric's better side)
    tied_seeds: int  # paired seeds with d_s = 0
    seed_var: float
    sentence_var: float
    n_resamples: int
    differences: np.ndarray | None = None  # (B,) resampled Δ, one seed only
    same_test_set: tuple[float, ...] = ()  # per seed: sacreBLEU's paired-bootstrap p

    @property
    def p_floor(self) -> float | None:
        """The smallest p the resampling can give (test-set-only comparisons)."""
        return 1 / (self.n_resamples + 1) if self.scope == TEST_SET_ONLY else None

    @property
    def seed_share(self) -> float:
        """ρ̂: the seeds' estimated share of Var(Δ) (1 where the sentences' part is 0)."""
        total = self.seed_var + self.sentence_var
        return self.seed_var / total if total > 0 else 1.0

    def critical(self, alpha: float) -> float:
        """The critical value of ``|Δ|/SE`` at level ``alpha`` (seed-level comparisons)."""
        return float(critical.critical_value(alpha, self.seed_share, len(self.seeds) - 1))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The two-sided ``level`` interval of Δ."""
        tail = (1 - level) / 2
        if self.scope == TEST_SET_ONLY:
            low, high = np.quantile(self.differences, [tail, 1 - tail])
            return float(low), float(high)
        half = self.critical(1 - level) * self.se
        return self.delta - half, self.delta + half


Term = tuple[float, dict[int, str]]
"""A weighted system in a contrast: (weight, seed -> run id)."""


def compare(
    metric: Metric,
    arm: dict[int, str],
    baseline: dict[int, str],
    resampled: Resampled,
    logged: dict[tuple[str, str], float] | None = None,
) -> Comparison | None:
    """Compare ``arm`` with ``baseline`` (seed -> run id each) on ``metric``: the contrast
    ``arm − baseline``."""
    return contrast(metric, [(1.0, arm)], [(1.0, baseline)], resampled, logged)


def contrast(
    metric: Metric,
    plus: list[Term],
    minus: list[Term],
    resampled: Resampled,
    logged: dict[tuple[str, str], float] | None = None,
) -> Comparison | None:
    """A linear contrast of systems on ``metric``: per seed ``s`` (paired by value; only seeds
    every system has), ``a_s = Σ w·score(plus system at s)``, ``b_s`` the same over ``minus``,
    ``d_s = a_s − b_s``; Δ is the mean of ``d_s`` and its variance has the two components of the
    module docstring, each replicate recomputing every system's score on the same sentences.
    An arm against the baseline is ``plus = [(1, arm)]``, ``minus = [(1, baseline)]``; a 2 × 2
    interaction is ``(ab − a) − (b − base)``; one system alone (``minus = []``) gives its own
    mean and interval. ``baseline``/``arm`` of the result hold the means of ``b_s``/``a_s``.

    Scores come from the resampled statistics; a run without them falls back to its ``logged``
    score and the whole comparison to the seed level. None where no seed has every score."""
    logged = logged or {}

    def score(run: str) -> float | None:
        value = resampled.full.get((run, metric.name), logged.get((run, metric.name)))
        return None if value is None or not math.isfinite(value) else value

    terms = [(w, runs) for w, runs in plus] + [(-w, runs) for w, runs in minus]
    common_seeds = set.intersection(*(set(runs) for _, runs in terms))
    seeds = tuple(s for s in sorted(common_seeds) if all(score(runs[s]) is not None for _, runs in terms))
    if not seeds:
        return None

    def combine(part: list[Term]) -> np.ndarray:
        return np.array([sum(w * score(runs[s]) for w, runs in part) for s in seeds], dtype=float)

    a, b = combine(plus), combine(minus)
    d, n = a - b, len(seeds)
    sign = 1.0 if metric.higher_is_better else -1.0
    common = dict(
        metric=metric.name,
        seeds=seeds,
        baseline=float(b.mean()),
        arm=float(a.mean()),
        delta=float(d.mean()),
        better_seeds=int(np.sum(sign * d > 0)),
        tied_seeds=int(np.sum(d == 0)),
        n_resamples=resampled.n_resamples,
    )
    if not all((runs[s], metric.name) in resampled.replicates for _, runs in terms for s in seeds):
        if n == 1:
            return None  # one seed and no sentences: nothing to resample
        return _seed_comparison(common, d, 0.0, SEEDS_ONLY)
    each = np.stack(
        [sum(w * resampled.replicates[(runs[s], metric.name)] for w, runs in terms) for s in seeds]
    )  # (n, B)
    same_test_set = tuple(sacrebleu_p(row, float(x)) for row, x in zip(each, d, strict=True))
    m = resampled.n_sentences
    if n == 1:
        return Comparison(
            **common,
            se=float(each[0].std(ddof=1)),
            p=same_test_set[0],
            scope=TEST_SET_ONLY,
            seed_var=math.nan,
            sentence_var=float(each[0].var(ddof=1)),
            differences=each[0],
            same_test_set=same_test_set,
        )
    v_all = float(each.mean(axis=0).var(ddof=1))
    v_each = float(each.var(axis=1, ddof=1).mean())
    return _seed_comparison(
        common, d, sentence_component(v_all, v_each, n, m), SEEDS_AND_SENTENCES, same_test_set
    )


def sentence_component(v_all, v_each, n: int, m: int):
    """The test sentences' share of Var(Δ) (scalars, or arrays of studies alike).

    In a seeds × sentences layout, ``V_all`` estimates ``(σ²_sent + σ²_noise/n)/m`` and
    ``R = (V_each − V_all)/(n − 1)`` estimates ``σ²_noise/(n·m)``, so ``V_sent = V_all − R`` (the
    module's formula), clipped at 0. Its degrees of freedom, ``(V_all − R)² / (V_all²/(m − 1) +
    R²/((m − 1)(n − 1)))``, are in the hundreds with a thousand sentences wherever the part
    matters, so the test takes it as known (:mod:`ablab.analysis.critical`)."""
    if m < 2:  # one sentence: nothing to resample
        return 0.0 * v_all
    r = np.maximum(0.0, (v_each - v_all) / (n - 1))
    return np.maximum(0.0, v_all - r)


def seed_test(delta, v_seed, v_sent, n: int):
    """``(SE, p)`` of Δ with ``SE² = V_seed + V_sent`` and ``n`` paired seeds (scalars, or arrays
    of studies alike): p from Welch's critical function of the seeds' share
    (:mod:`ablab.analysis.critical`)."""
    total = np.asarray(v_seed + v_sent, dtype=float)
    se = np.sqrt(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = critical.p_value(delta / se, v_seed / total, n - 1)  # the share exactly 1 without sentences
    return se, np.where(se > 0, p, np.where(se == 0, np.where(delta == 0, 1.0, 0.0), np.nan))


def _seed_comparison(common: dict, d: np.ndarray, v_sent: float, scope: str, same_test_set=()) -> Comparison:
    v_seed = float(d.var(ddof=1)) / len(d)
    se, p = seed_test(common["delta"], v_seed, v_sent, len(d))
    return Comparison(
        **common,
        se=float(se),
        p=float(p),
        scope=scope,
        seed_var=v_seed,
        sentence_var=float(v_sent),
        same_test_set=same_test_set,
    )
