"""Holm against statsmodels and a hand computation; Bonferroni's simultaneous intervals beside Holm's
verdicts; power against the noncentral t and against the p-value by simulation."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ablab.analysis import critical
from ablab.analysis.bootstrap import SEEDS_AND_SENTENCES, TEST_SET_ONLY, Comparison
from ablab.analysis.verdicts import (
    DIFFERS,
    INCONCLUSIVE,
    ONE_SEED,
    decide,
    detectable_effect,
    holm,
    power,
    seeds_needed,
    seeds_needed_range,
)


def test_holm_matches_statsmodels_and_a_hand_computation(statsmodels_holm):
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1 -> 0.025, 0.04, 0.09, 0.08 -> 0.09, 0.5
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.uniform(0, 0.2, rng.integers(1, 30))
        assert holm(values) == pytest.approx(statsmodels_holm(values)[1])
    with_gap = holm([0.01, math.nan, 0.02])
    assert (
        with_gap[0] == pytest.approx(0.02) and math.isnan(with_gap[1]) and with_gap[2] == pytest.approx(0.02)
    )


def comparison(delta, se, p=None, scope=SEEDS_AND_SENTENCES, seeds=(1, 2, 3, 4, 5), share=1.0):
    """A comparison whose SE² is ``se²``, the seeds' part ``share`` of it, p from its test."""
    p = float(critical.p_value(delta / se, share, len(seeds) - 1)) if p is None else p
    return Comparison(
        metric="bleu",
        seeds=seeds,
        baseline=30.0,
        arm=30.0 + delta,
        delta=delta,
        se=se,
        p=p,
        scope=scope,
        better_seeds=2,
        tied_seeds=0,
        seed_var=share * se**2,
        sentence_var=(1 - share) * se**2,
        n_resamples=1000,
        differences=np.linspace(delta - 2 * se, delta + 2 * se, 1000) if scope == TEST_SET_ONLY else None,
    )


def test_the_simultaneous_interval_is_bonferronis_and_the_verdict_holms():
    rng = np.random.default_rng(1)
    comparisons = [
        (f"arm{i}", comparison(rng.normal(0, 2), rng.uniform(0.3, 1.5), share=rng.uniform(0.05, 1)))
        for i in range(40)
    ]
    verdicts = decide(comparisons)
    assert {v.word for v in verdicts} == {DIFFERS, INCONCLUSIVE}
    for v in verdicts:
        low, high = v.simultaneous
        assert v.simultaneous_level == pytest.approx(1 - 0.05 / 40)
        assert (low > 0 or high < 0) == (v.comparison.p <= 0.05 / 40)  # up to interpolation: none near
        assert (v.word == DIFFERS) == (v.p_adjusted <= 0.05)
        assert v.holm_only == (v.word == DIFFERS and low <= 0 <= high)
        assert v.family == 40 and v.interval[0] >= low - 1e-12  # simultaneous only widens
        assert (v.seeds_needed is None) or v.word == INCONCLUSIVE
    # Holm's later steps: the 2nd smallest p of 2 is tested at α/1, beyond Bonferroni's α/2
    first, second = decide([("a", comparison(1.0, 0.1, p=0.001)), ("b", comparison(0.3, 0.15, p=0.04))])
    assert second.word == DIFFERS and second.holm_only and not first.holm_only


def test_one_seed_gets_no_verdict_across_training_runs():
    (v,) = decide([("arm", comparison(3.0, 0.5, p=1 / 1001, scope=TEST_SET_ONLY, seeds=(1,)))])
    assert v.word == ONE_SEED and v.detectable is None and v.seeds_needed is None


def test_the_detectable_effect_is_the_comparisons_own_test_and_an_effect_that_large_differs():
    nulls = [(f"null{i}", comparison(0.0, 0.4, p=1.0)) for i in range(9)]
    tight = comparison(0.1, 0.4, share=0.1)  # 5 seeds, mostly the sentences' part
    loose = comparison(0.1, 0.4, share=1.0)  # seeds only: Student's t with 4 df
    verdicts = decide([("tight", tight), ("loose", loose), *nulls])
    by_name = {v.setting: v for v in verdicts}
    for name, c in (("tight", tight), ("loose", loose)):
        assert by_name[name].detectable == pytest.approx(detectable_effect(c, 0.05 / 11))
    assert by_name["tight"].detectable < by_name["loose"].detectable / 1.8  # 4 df: heavy tails
    found = by_name["tight"].detectable
    (alone, *_) = decide([("found", comparison(found, 0.4, share=0.1)), *nulls])
    assert alone.word == DIFFERS and not alone.holm_only  # as large as 'detects': outside the interval


def test_power_of_seeds_alone_is_the_noncentral_t_and_the_detectable_effect_has_80_percent():
    assert power(0.0, 1.0, 0.0, 11, 0.05) == pytest.approx(0.05, rel=1e-6)
    c = comparison(0.0, 1.0, seeds=tuple(range(11)))
    effect = detectable_effect(c, 0.05)
    assert power(effect, 1.0, 0.0, 11, 0.05) == pytest.approx(0.8)
    crit = scipy_stats.t.ppf(0.975, 10)
    assert scipy_stats.nct.sf(crit, 10, effect) + scipy_stats.nct.cdf(-crit, 10, effect) == pytest.approx(0.8)
    assert detectable_effect(comparison(0.0, 1.0, seeds=(1, 2, 3)), 0.05) > effect  # few seeds: heavy tails


def test_power_with_a_sentence_part_is_the_rate_at_which_the_p_value_rejects():
    rng = np.random.default_rng(2)  # 3 seeds, half the variance theirs; the sentences' part known
    share, studies, alpha = 0.5, 40_000, 0.05 / 12
    for effect in (0.0, 3.0):
        delta = rng.normal(effect, 1.0, studies)
        v_seed = share * rng.chisquare(2, studies) / 2
        se = np.sqrt(v_seed + 1 - share)
        p = critical.p_value(delta / se, v_seed / se**2, 2)
        expected = power(effect, share, 1 - share, 3, alpha)
        assert np.mean(p <= alpha) == pytest.approx(expected, abs=4 * math.sqrt(expected / studies) + 0.002)


def test_seeds_needed_grows_as_the_effect_shrinks_and_stops_at_the_test_sets_limit():
    c = comparison(1.0, 0.6, seeds=(1, 2, 3))  # s_d^2 = 3 * 0.36
    big, small = seeds_needed(c, 0.05), seeds_needed(comparison(0.5, 0.6, seeds=(1, 2, 3)), 0.05)
    assert 3 < big < small
    per_seed = c.seed_var * 3
    assert (
        power(1.0, per_seed / big, 0.0, big, 0.05)
        >= 0.8
        > power(1.0, per_seed / (big - 1), 0.0, big - 1, 0.05)
    )
    stuck = Comparison(**{**c.__dict__, "sentence_var": 4.0})
    assert seeds_needed(stuck, 0.05) is None  # the test set's own variation hides Δ = 1 at any seed count


def test_seeds_needed_is_a_range_over_the_seed_variance_s_interval_narrowing_with_more_seeds():
    few = comparison(1.0, 0.6, seeds=(1, 2, 3))  # s_d^2 = 3 * 0.36, 2 degrees of freedom
    fewest, most = seeds_needed_range(few, 0.05)
    assert fewest < seeds_needed(few, 0.05) < most
    low = 3 * 0.36 * 2 / scipy_stats.chi2.ppf(0.9, 2)  # the low end of s_d^2's 80 % interval
    assert fewest == seeds_needed(few, 0.05, per_seed=low)
    many = comparison(1.0, 0.6 * math.sqrt(3 / 30), seeds=tuple(range(30)))  # the same s_d^2
    assert many.seed_var * 30 == pytest.approx(few.seed_var * 3)
    narrow = seeds_needed_range(many, 0.05)
    assert narrow[1] - narrow[0] < most - fewest and narrow[0] <= seeds_needed(many, 0.05) <= narrow[1]
