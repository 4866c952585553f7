"""The comparison's false-positive rate on null effects, by simulation (the fast version of
benchmarks/stats_calibration.py): 1,000 studies per seed count, each a new test set and new seeds."""

import numpy as np
import pytest

from analysis.simulation import NoiseModel, shift_for, simulate_study, with_seed_sd

STUDIES = 1000


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return with_seed_sd(NoiseModel(rng.poisson(11, 200) + 2), 1.0, rng)


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_null_effects_come_out_differs_at_the_nominal_rate(model, seeds):
    rng = np.random.default_rng(seeds)
    old = seeds == 3
    results = [simulate_study(model, seeds, 0.0, rng, n_resamples=200, old=old) for _ in range(STUDIES)]
    rate = np.mean([r.p <= 0.05 for r in results])
    assert 0.02 <= rate <= 0.07, rate
    if old:  # the sentence-only bootstrap it replaced mistakes seed noise for effects
        assert np.mean([r.p_old <= 0.05 for r in results]) > 0.1


def test_a_real_effect_is_found(model):
    rng = np.random.default_rng(11)
    shift = shift_for(model, 2.0)  # +2 BLEU
    results = [simulate_study(model, 10, shift, rng, n_resamples=200, old=False) for _ in range(200)]
    assert np.mean([r.delta for r in results]) == pytest.approx(2.0, abs=0.2)
    assert np.mean([r.p <= 0.05 for r in results]) > 0.7
