"""Verdicts from comparisons: Holm's adjustment within each family, plain words, and what it would take.

- **Families**: a report's comparisons on the primary metric (a spec's ``primary_metric``, by
  default BLEU; a group may name its own, e.g. ECE for label smoothing) form the *primary*
  family, which the verdicts table and the findings lead with; those on chrF, ECE and test NLL
  form a *secondary* family, adjusted on its own and labelled so. Lowercased BLEU, a near
  duplicate of BLEU, is in no family unless it is a group's primary metric.
- **Holm–Bonferroni** within a family: with its k p-values sorted,
  ``p_adj(i) = max_{j ≤ i} min(1, (k − j + 1)·p(j))``.
- **Verdict**: *differs* where ``p_adj ≤ α`` (α = 0.05), else *inconclusive*. A comparison
  with one seed gets no verdict across training runs (*test set only*).
- **Simultaneous interval**: Δ's interval at confidence ``1 − α/k`` (Bonferroni), so the k
  intervals of a family cover their true Δ together with probability at least 1 − α. It
  excludes 0 exactly where ``p ≤ α/k``; Holm's later steps test at ``α/(k − j + 1)`` and can
  call *differs* where it still touches 0 (:attr:`Verdict.holm_only`, marked in the report).
  (The interval at ``1 − α·p/p_adj`` it replaces matched the verdicts but depended on the data
  and covered nothing jointly.)
- **Detectable effect**: the smallest |Δ| the comparison's own test detects with 80 % power at
  the simultaneous interval's level ``α/k`` (the level a lone effect must pass under Holm), with
  its SE and critical function (:func:`ablab.analysis.critical.power`): an observed Δ that large
  excludes 0 from the interval printed beside it. (Taken from the baseline's seed sd with
  ``n − 1`` degrees of freedom instead, it ignored that the test pools the sentences' part:
  3 seeds "detected" only |Δ| ≥ 12 BLEU beside comparisons of 2.6 BLEU called *differs*.)
- **Hardware**: a comparison whose runs computed differently (different precisions, or kinds of
  device other than CPUs all in fp32) is *confounded by hardware* (:func:`ablab.analysis.hardware.
  confounded`): no verdict, and not a member of the Holm family.
- :func:`judge` makes every comparison of a report (each setting against the setting named
  ``baseline``, and each main effect and interaction of a crossed design, on every metric of
  :data:`ablab.analysis.metrics.METRICS` that is in a family) and decides each family together.
- **Seeds needed**: the smallest n whose power reaches 80 % for the observed Δ at ``α/k``,
  with the comparison's own components, ``SE² = s²_d/n + V_sent`` (the test set's part does not
  shrink with seeds; where it alone prevents detection no number of seeds will do), the test's
  critical function at ``n − 1`` degrees of freedom. Given as a
  range: ``s²_d`` at either end of its 80 % interval, ``s²_d·(n − 1)/χ²_{0.9, n−1}`` to
  ``s²_d·(n − 1)/χ²_{0.1, n−1}``; with 3 seeds the variance has 2 degrees of freedom, and one
  figure ("about 54 seeds") would treat it as known.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as scipy_stats

from ablab.analysis import critical, hardware
from ablab.analysis.bootstrap import RESAMPLES, TEST_SET_ONLY, Comparison, Resampled, contrast, resample_runs
from ablab.analysis.factorial import Design
from ablab.analysis.load import SweepRuns
from ablab.analysis.metrics import METRICS
from ablab.analysis.stats import ALPHA
from ablab.trainer.tracking.record import BASELINE

DEFAULT_PRIMARY = "bleu"
PRIMARY = "primary"
SECONDARY = "secondary"
NO_FAMILY = ("bleu_lc",)  # compared only where a group names it its primary metric
POWER = 0.8
MAX_SEEDS = 100
SEED_VARIANCE_LEVEL = 0.8  # the interval of s²_d that seeds-to-resolve is given over

DIFFERS = "differs"
INCONCLUSIVE = "inconclusive"
ONE_SEED = "test set only"
CONFOUNDED = "confounded by hardware"


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN, not counted)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    k = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[i]))
        out[i] = running
    return out


def power(effect: float, v_seed: float, v_sent: float, n: int, alpha: float) -> float:
    """The power of the comparison test at level ``alpha`` to find a true Δ of ``effect`` where
    ``SE² = v_seed + v_sent`` and the seed part has ``n − 1`` degrees of freedom (``v_seed = 0``:
    the sentences' part alone, as with infinitely many seeds)."""
    total = v_seed + v_sent
    se, share = math.sqrt(total), v_seed / total if total > 0 else 1.0
    return critical.power(effect, se, share, n - 1, alpha)


def detectable_effect(c: Comparison, alpha: float, target: float = POWER) -> float:
    """The smallest |effect| ``c``'s test detects at level ``alpha`` with probability ``target``."""
    if c.se <= 0:
        return 0.0

    def reach(effect: float) -> float:
        return power(effect, c.seed_var, c.sentence_var, len(c.seeds), alpha) - target

    high = c.se
    while reach(high) < 0:
        high *= 2
    return float(optimize.brentq(reach, 0.0, high, xtol=c.se * 1e-6))


def seeds_needed(
    c: Comparison, alpha: float, target: float = POWER, per_seed: float | None = None
) -> int | None:
    """The fewest seeds that detect the observed Δ of ``c`` with probability ``target``, the
    seeds' differences having variance ``per_seed`` (default: their sample variance ``s²_d``);
    None if even ``MAX_SEEDS`` do not."""
    per_seed = c.seed_var * len(c.seeds) if per_seed is None else per_seed
    for n in range(2, MAX_SEEDS + 1):
        if power(c.delta, per_seed / n, c.sentence_var, n, alpha) >= target:
            return n
    return None


def seeds_needed_range(c: Comparison, alpha: float) -> tuple[int | None, int | None]:
    """:func:`seeds_needed` with ``s²_d`` at the low and the high end of its
    ``SEED_VARIANCE_LEVEL`` interval (chi-square with n − 1 degrees of freedom)."""
    n = len(c.seeds)
    tail = (1 - SEED_VARIANCE_LEVEL) / 2
    low, high = (c.seed_var * n * (n - 1) / scipy_stats.chi2.ppf(q, n - 1) for q in (1 - tail, tail))
    return seeds_needed(c, alpha, per_seed=low), seeds_needed(c, alpha, per_seed=high)


@dataclass(frozen=True)
class Verdict:
    setting: str
    comparison: Comparison
    p_adjusted: float
    family: int  # comparisons in its Holm family
    word: str
    simultaneous_level: float  # 1 − α/k
    detectable: float | None  # smallest |Δ| this comparison's test detects with 80 % power
    seeds_needed: tuple[int | None, int | None] | None  # inconclusive: seeds_needed_range
    test_set_limited: bool  # the test set's part of the variance alone hides the observed Δ
    family_name: str = PRIMARY  # PRIMARY or SECONDARY
    left_out: tuple[tuple[int, str], ...] = ()  # (seed, why) of seeds some run has but not every system
    stopped: str = ""  # a sequential design's: why it took no more seeds, or the look it waits for

    @property
    def interval(self) -> tuple[float, float]:
        return self.comparison.interval(0.95)

    @property
    def simultaneous(self) -> tuple[float, float]:
        return self.comparison.interval(self.simultaneous_level)

    @property
    def holm_only(self) -> bool:
        """*differs* by a later Holm step while the simultaneous interval still touches 0."""
        low, high = self.simultaneous
        return self.word == DIFFERS and low <= 0 <= high


def decide(
    comparisons: list[tuple[str, Comparison]],
    alpha: float = ALPHA,
    confounded: Sequence[bool] = (),
    family_name: str = PRIMARY,
) -> list[Verdict]:
    """Verdicts for every ``(setting, comparison)`` of one family, adjusted together (Holm). A
    comparison ``confounded`` by hardware is not tested: it is left out of the family."""
    confounded = list(confounded) or [False] * len(comparisons)
    adjusted = holm(
        [math.nan if mixed else c.p for (_, c), mixed in zip(comparisons, confounded, strict=True)]
    )
    k = max(1, confounded.count(False))
    out = []
    for (setting, c), p_adj, mixed in zip(comparisons, adjusted, confounded, strict=True):
        if mixed:
            out.append(Verdict(setting, c, math.nan, k, CONFOUNDED, 0.95, None, None, False, family_name))
            continue
        word = ONE_SEED if c.scope == TEST_SET_ONLY else DIFFERS if p_adj <= alpha else INCONCLUSIVE
        detectable = None if c.scope == TEST_SET_ONLY else detectable_effect(c, alpha / k)
        needed = seeds_needed_range(c, alpha / k) if word == INCONCLUSIVE else None
        limited = c.sentence_var > 0 and power(c.delta, 0.0, c.sentence_var, len(c.seeds), alpha / k) < POWER
        level = 1 - alpha / k
        out.append(
            Verdict(setting, c, float(p_adj), k, word, level, detectable, needed, limited, family_name)
        )
    return out


def seed_runs(trials: pd.DataFrame) -> dict[str, dict[int, str]]:
    """Setting -> seed -> run id of its finished runs."""
    finished = trials[trials["status"] == "finished"]
    out: dict[str, dict[int, str]] = {}
    for setting, seed, run_id in zip(finished["setting"], finished["seed"], finished["run_id"], strict=True):
        out.setdefault(setting, {})[int(seed)] = run_id
    return out


@dataclass
class Evidence:
    """What every comparison of a report is computed from: each run's scores on the test set and
    on the shared sentence resamples, the logged scores of runs without per-sentence
    statistics, and each setting's finished runs by seed."""

    resampled: Resampled
    logged: dict[tuple[str, str], float]
    trials: pd.DataFrame
    runs: dict[str, dict[int, str]]  # setting -> seed -> finished run id

    def mixes_hardware(self, c: Comparison, settings) -> bool:
        """Whether the runs ``c`` compares (``settings`` at its seeds) computed differently."""
        run_ids = {self.runs[s][seed] for s in settings for seed in c.seeds if seed in self.runs.get(s, {})}
        return hardware.confounded(self.trials[self.trials["run_id"].isin(run_ids)])

    def left_out(self, c: Comparison, settings) -> tuple[tuple[int, str], ...]:
        """The seeds some run of ``settings`` has that ``c`` could not pair, each with why (a run
        diverged, failed, never ran, or has no score on the metric): none drops out unsaid."""
        rows = self.trials[self.trials["setting"].isin(list(settings))]
        out = []
        for seed in sorted(set(rows["seed"].astype(int)) - set(c.seeds)):
            at = rows[rows["seed"] == seed]
            why = [f"{r.setting} {r.status}" for r in at.itertuples() if r.status != "finished"]
            why += [f"{s} not run" for s in settings if s not in set(at["setting"])]
            out.append((seed, ", ".join(why) or f"no {METRICS[c.metric].label}"))
        return tuple(out)

    def contrast(self, metric: str, plus: dict[str, float], minus: dict[str, float]) -> Comparison | None:
        """``Σ w·setting`` over ``plus`` minus the same over ``minus`` (setting -> weight)."""

        def terms(part: dict[str, float]) -> list:
            return [(w, self.runs.get(setting, {})) for setting, w in part.items()]

        return contrast(METRICS[metric], terms(plus), terms(minus), self.resampled, self.logged)


def gather(runs: SweepRuns, trials: pd.DataFrame, n_resamples: int = RESAMPLES) -> Evidence:
    """Resample every run's per-sentence statistics where the runs share one test set (the most
    common size); other runs are compared at the seed level on their logged scores."""
    finished = trials[trials["status"] == "finished"]
    sizes = Counter(len(next(iter(s.values()))) for s in runs.statistics.values() if s)
    size = sizes.most_common(1)[0][0] if sizes else None
    statistics = {r: s for r, s in runs.statistics.items() if s and len(next(iter(s.values()))) == size}
    logged = {
        (row["run_id"], m): float(row[m])
        for row in finished.to_dict("records")
        for m in METRICS
        if row.get(m) is not None and not pd.isna(row.get(m))
    }
    resampled = resample_runs(statistics, tuple(METRICS.values()), n_resamples)
    return Evidence(resampled, logged, trials, seed_runs(trials))


def judge(
    evidence: Evidence, designs: Sequence[Design] = (), primary: Mapping[str, str] | None = None
) -> dict[tuple[str, str], Verdict]:
    """Every comparison of a report, each family adjusted on its own: each setting against the
    baseline, except the cells of a crossed design, whose main effects and interactions are
    compared instead. ``primary``: group -> its primary metric (default BLEU). Keys: (setting,
    metric), and (``group/contrast label``, metric)."""
    primary = primary or {}
    trials = evidence.trials
    crossed = {d.group for d in designs}
    groups_of: dict[str, set[str]] = {}
    for setting, groups in zip(trials["setting"], trials["groups"], strict=True):
        groups_of.setdefault(setting, set()).update(g for g in groups if g != BASELINE)
    found: list[tuple[str, str, Comparison, bool, bool]] = []  # key, setting, comparison, confounded, lead
    settings_of: dict[str, set[str]] = {}  # key -> the settings its contrast involves

    def add(key: str, name: str, plus: dict, minus: dict, groups: set[str], metrics=tuple(METRICS)) -> None:
        leads = {primary.get(g, DEFAULT_PRIMARY) for g in groups}
        settings_of[key] = {*plus, *minus}
        for metric in metrics:
            if metric in NO_FAMILY and metric not in leads:
                continue
            c = evidence.contrast(metric, plus, minus)
            if c is not None:
                found.append((key, name, c, evidence.mixes_hardware(c, {**plus, **minus}), metric in leads))

    for setting in dict.fromkeys(trials.loc[trials["status"] == "finished", "setting"]):
        if setting == BASELINE or groups_of[setting] <= crossed:  # a cell of crossed designs only
            continue
        add(setting, setting, {setting: 1.0}, {BASELINE: 1.0}, groups_of[setting] - crossed)

    def add_effect(d: Design, effect, metrics=tuple(METRICS)) -> None:
        plus = {d.cells[cell]: w for cell, w in effect.plus.items()}
        minus = {d.cells[cell]: w for cell, w in effect.minus.items()}
        add(f"{d.group}/{effect.label}", effect.label, plus, minus, {d.group}, metrics)

    for d in designs:
        for effect in d.contrasts():
            add_effect(d, effect)
    out = _decide_families(evidence, found, settings_of)
    added = False
    for d in designs:  # a real interaction: its factors' simple effects join the primary family
        lead = primary.get(d.group, DEFAULT_PRIMARY)
        for s in d.simple_effects():
            interaction = out.get((f"{d.group}/{s.interaction}", lead))
            mains = [out.get((f"{d.group}/{m}", lead)) for m in s.mains]
            if interaction is not None and _is_real(interaction, [m for m in mains if m is not None]):
                for effect in s.effects:
                    if f"{d.group}/{effect.label}" not in settings_of:
                        add_effect(d, effect, (lead,))
                        added = True
    return _decide_families(evidence, found, settings_of) if added else out


def _is_real(interaction: Verdict, mains: list[Verdict]) -> bool:
    """An interaction to read through its simple effects: *differs*, or larger than a main effect
    of its factors."""
    size = abs(interaction.comparison.delta)
    return interaction.word == DIFFERS or any(size > abs(m.comparison.delta) for m in mains)


def _decide_families(evidence: Evidence, found: list, settings_of: dict) -> dict[tuple[str, str], Verdict]:
    """Each family of ``found`` (key, name, comparison, confounded, primary) decided on its own."""
    out = {}
    for family_name, leads in ((PRIMARY, True), (SECONDARY, False)):
        members = [(key, name, c, mixed) for key, name, c, mixed, lead in found if lead == leads]
        verdicts = decide(
            [(name, c) for _, name, c, _ in members],
            confounded=[mixed for *_, mixed in members],
            family_name=family_name,
        )
        for (key, *_), v in zip(members, verdicts, strict=True):
            left_out = evidence.left_out(v.comparison, settings_of[key])
            out[(key, v.comparison.metric)] = replace(v, left_out=left_out)
    return out
