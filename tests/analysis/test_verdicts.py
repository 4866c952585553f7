"""Holm against statsmodels and a hand computation; verdicts agree with their intervals; power."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from analysis.bootstrap import SEEDS_AND_SENTENCES, TEST_SET_ONLY, Comparison
from analysis.verdicts import (
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


def test_holm_matches_statsmodels_and_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1 -> 0.025, 0.04, 0.09, 0.08 -> 0.09, 0.5
    assert holm(p).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.uniform(0, 0.2, rng.integers(1, 30))
        assert holm(values) == pytest.approx(multipletests(values, method="holm")[1])
    with_gap = holm([0.01, math.nan, 0.02])
    assert (
        with_gap[0] == pytest.approx(0.02) and math.isnan(with_gap[1]) and with_gap[2] == pytest.approx(0.02)
    )


def comparison(delta, se, df=4, p=None, scope=SEEDS_AND_SENTENCES, seeds=(1, 2, 3, 4, 5)):
    p = 2 * scipy_stats.t.sf(abs(delta) / se, df) if p is None else p
    return Comparison(
        metric="bleu",
        seeds=seeds,
        baseline=30.0,
        arm=30.0 + delta,
        delta=delta,
        se=se,
        df=df,
        p=p,
        scope=scope,
        better_seeds=2,
        tied_seeds=0,
        seed_var=se**2,
        sentence_var=0.0,
        sentence_df=0.0,
        n_resamples=1000,
        differences=np.linspace(delta - 2 * se, delta + 2 * se, 1000) if scope == TEST_SET_ONLY else None,
    )


def test_the_adjusted_interval_excludes_zero_exactly_when_the_verdict_is_differs():
    rng = np.random.default_rng(1)
    comparisons = [(f"arm{i}", comparison(rng.normal(0, 2), rng.uniform(0.3, 1.5))) for i in range(40)]
    verdicts = decide(comparisons)
    assert {v.word for v in verdicts} == {DIFFERS, INCONCLUSIVE}
    for v in verdicts:
        low, high = v.adjusted
        assert (v.word == DIFFERS) == (low > 0 or high < 0) == (v.p_adjusted <= 0.05)
        assert v.family == 40 and v.interval[0] >= low - 1e-12  # adjusting only widens
        assert (v.seeds_needed is None) or v.word == INCONCLUSIVE


def test_one_seed_gets_no_verdict_across_training_runs():
    (v,) = decide([("arm", comparison(3.0, 0.5, df=math.inf, p=1 / 1001, scope=TEST_SET_ONLY, seeds=(1,)))])
    assert v.word == ONE_SEED and v.detectable is None and v.seeds_needed is None


def test_the_detectable_effect_is_the_comparisons_own_test_and_an_effect_that_large_differs():
    nulls = [(f"null{i}", comparison(0.0, 0.4, df=30, p=1.0)) for i in range(9)]
    tight, loose = comparison(0.1, 0.4, df=30), comparison(0.1, 0.4, df=2)  # sentences pooled, or not
    verdicts = decide([("tight", tight), ("loose", loose), *nulls])
    by_name = {v.setting: v for v in verdicts}
    for name, c in (("tight", tight), ("loose", loose)):
        assert by_name[name].detectable == pytest.approx(detectable_effect(c.se, c.df, 0.05 / 11))
    assert by_name["tight"].detectable < by_name["loose"].detectable / 3  # df 2: heavy tails
    found = by_name["tight"].detectable
    (alone, *_) = decide([("found", comparison(found, 0.4, df=30)), *nulls])
    assert alone.word == DIFFERS  # an observed Δ as large as 'detects' passes the Holm step alone


def test_power_is_the_noncentral_t_and_the_detectable_effect_has_80_percent():
    assert power(0.0, 1.0, 10, 0.05) == pytest.approx(0.05)
    effect = detectable_effect(1.0, 10, 0.05)
    assert power(effect, 1.0, 10, 0.05) == pytest.approx(0.8)
    rng = np.random.default_rng(2)  # the same power by simulation: t-tests of samples of 11 differences
    samples = rng.normal(effect, math.sqrt(11), (20000, 11))  # se of the mean = 1
    t = samples.mean(1) / (samples.std(1, ddof=1) / math.sqrt(11))
    assert np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, 10)) == pytest.approx(0.8, abs=0.01)
    assert detectable_effect(1.0, 2, 0.05) > detectable_effect(1.0, 20, 0.05)  # few seeds: heavy tails


def test_seeds_needed_grows_as_the_effect_shrinks_and_stops_at_the_test_sets_limit():
    c = comparison(1.0, 0.6, df=2, seeds=(1, 2, 3))  # s_d^2 = 3 * 0.36
    big, small = seeds_needed(c, 0.05), seeds_needed(comparison(0.5, 0.6, df=2, seeds=(1, 2, 3)), 0.05)
    assert 3 < big < small
    se = math.sqrt(c.seed_var * 3 / big)
    assert (
        power(1.0, se, big - 1, 0.05)
        >= 0.8
        > power(1.0, math.sqrt(c.seed_var * 3 / (big - 1)), big - 2, 0.05)
    )
    stuck = Comparison(**{**c.__dict__, "sentence_var": 4.0, "sentence_df": 999.0})
    assert seeds_needed(stuck, 0.05) is None  # the test set's own variation hides Δ = 1 at any seed count


def test_seeds_needed_is_a_range_over_the_seed_variance_s_interval_narrowing_with_more_seeds():
    few = comparison(1.0, 0.6, df=2, seeds=(1, 2, 3))  # s_d^2 = 3 * 0.36, 2 degrees of freedom
    fewest, most = seeds_needed_range(few, 0.05)
    assert fewest < seeds_needed(few, 0.05) < most
    low = 3 * 0.36 * 2 / scipy_stats.chi2.ppf(0.9, 2)  # the low end of s_d^2's 80 % interval
    assert fewest == seeds_needed(few, 0.05, per_seed=low)
    many = comparison(1.0, 0.6 * math.sqrt(3 / 30), df=29, seeds=tuple(range(30)))  # the same s_d^2
    assert many.seed_var * 30 == pytest.approx(few.seed_var * 3)
    narrow = seeds_needed_range(many, 0.05)
    assert narrow[1] - narrow[0] < most - fewest and narrow[0] <= seeds_needed(many, 0.05) <= narrow[1]
