"""The comparison's false-positive rate on null effects, by simulation (the fast version of
benchmarks/stats_calibration.py): at every level Holm tests at, from the exact distributions of
the comparison's statistics (60,000 studies per cell); and at α = 0.05 through the whole pipeline,
per-sentence statistics and resampling included (1,000 studies per seed count)."""

import numpy as np
import pytest

from ablab.analysis import replica
from ablab.analysis.simulation import NoiseModel, shift_for, simulate_study, with_seed_sd

STUDIES = 1000
REPLICAS = 60_000
SHARES = (0.1, 0.5, 0.9)  # the sentences' share of Var(Δ)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return with_seed_sd(NoiseModel(rng.poisson(11, 200) + 2), 1.0, rng)


@pytest.mark.parametrize(
    ("seeds", "low", "high"),
    [
        (3, 0.15, 1.45),
        (5, 0.6, 1.45),
        (10, 0.6, 1.45),
    ],  # 3 seeds: conservative at α/60 (ablab.analysis.critical)
)
def test_null_effects_differ_at_the_nominal_rate_at_holm_s_levels(seeds, low, high):
    rng = np.random.default_rng(seeds)
    worst_before = 0.0
    for share in SHARES:
        studies = replica.draw(seeds, share, REPLICAS, rng)
        p, before = replica.welch_p(studies), replica.satterthwaite_p(studies)
        assert 0.85 <= np.mean(p <= 0.05) / 0.05 <= 1.15
        for alpha in (0.05 / 12, 0.05 / 60):
            assert low <= np.mean(p <= alpha) / alpha <= high, (share, alpha)
            worst_before = max(worst_before, np.mean(before <= alpha) / alpha)
    if seeds == 3:  # the degrees of freedom it replaced reward a small seed variance
        assert worst_before > 5


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_null_effects_come_out_differs_at_the_nominal_rate_through_the_pipeline(model, seeds):
    rng = np.random.default_rng(seeds)
    old = seeds == 3
    results = [simulate_study(model, seeds, 0.0, rng, n_resamples=200, old=old) for _ in range(STUDIES)]
    rate = np.mean([r.p <= 0.05 for r in results])
    assert 0.02 <= rate <= 0.07, rate
    if old:  # the sentence-only bootstrap it replaced mistakes seed noise for effects
        assert np.mean([r.p_old <= 0.05 for r in results]) > 0.1


def test_paired_seeds_hold_the_level_through_the_pipeline(model):
    rng = np.random.default_rng(7)
    results = [simulate_study(model, 3, 0.0, rng, n_resamples=200, pairing=0.96) for _ in range(STUDIES)]
    assert 0.02 <= np.mean([r.p <= 0.05 for r in results]) <= 0.07


def test_a_real_effect_is_found(model):
    rng = np.random.default_rng(11)
    shift = shift_for(model, 2.0)  # +2 BLEU
    results = [simulate_study(model, 10, shift, rng, n_resamples=200) for _ in range(200)]
    assert np.mean([r.delta for r in results]) == pytest.approx(2.0, abs=0.2)
    assert np.mean([r.p <= 0.05 for r in results]) > 0.7
