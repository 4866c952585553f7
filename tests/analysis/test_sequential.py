"""The sequential design over seeds: its spending, its sequential p-values, Holm across the family,
futility and caps, and its error rate across comparisons and looks, by simulation of studies with
nested seeds and a shared baseline (the noise model of :func:`ablab.analysis.replica.draw_sequential`)."""

from __future__ import annotations

import numpy as np
import pytest

from ablab.analysis import critical, replica
from ablab.analysis import sequential as seq

DESIGN = seq.Design(initial=3, maximum=10, step=2)


def test_the_looks_and_what_each_spends():
    assert DESIGN.looks == [3, 5, 7, 10]  # 9 is within half a step of 10
    assert seq.Design(3, 10, 4).looks == [3, 7, 10] and seq.Design(3, 4, 2).looks == [3, 4]
    spent = [DESIGN.increment(n) for n in DESIGN.looks]
    assert spent[0] == pytest.approx(0.3**seq.SPENDING_EXPONENT) and sum(spent) == pytest.approx(1.0)
    assert all(s > 0 for s in spent) and DESIGN.spent(10) == 1.0
    assert seq.Design(3, 3, 2).looks == [3]  # a fixed design is one look
    with pytest.raises(ValueError, match="2 <= initial <= max"):
        seq.Design(5, 3, 1)


def test_the_sequential_p_is_the_least_p_over_what_each_look_spent():
    path = seq.Path("a", [seq.Look(3, 1.0, 0.2, 0.05), seq.Look(5, 1.1, 0.12, 0.05)])
    p = [look.p for look in path.looks]
    expected = min(p[0] / DESIGN.increment(3), p[1] / DESIGN.increment(5), 1.0)
    assert path.q(DESIGN) == pytest.approx(expected)
    look = path.looks[0]
    assert look.p == pytest.approx(float(critical.p_value(1.0 / look.se, 0.2 / 0.25, 2)))


def test_holm_over_families_is_statsmodels_holm_row_by_row(statsmodels_holm):
    p = np.random.default_rng(0).beta(0.3, 4.0, (200, 7))
    ours = seq.holm_rejects(p, 0.05)
    theirs = np.array([statsmodels_holm(row)[0] for row in p])
    assert (ours == theirs).all() and ours.any() and not ours.all()


def test_a_clear_effect_is_decided_a_null_one_with_a_tight_interval_is_futile():
    clear = seq.Path("clear", [seq.Look(3, 500.0, 0.04, 0.02)])  # p at 3 seeds below α/3 · 0.3^ρ
    nothing = seq.Path("nothing", [seq.Look(3, 0.01, 0.04, 0.02)])
    open_ = seq.Path("open", [seq.Look(3, 0.6, 0.2, 0.02)])  # could still pass at 10 seeds
    assert seq.step([clear, nothing, open_], DESIGN, 0.05) == {"clear": seq.DECIDED, "nothing": seq.FUTILE}
    assert open_.stopped is None
    open_.looks.append(seq.Look(10, 0.02, 0.06, 0.02))  # at its most seeds, still undecided
    assert seq.step([clear, nothing, open_], DESIGN, 0.05) == {"open": seq.CAP}


def test_the_power_at_most_is_the_tests_power_at_the_most_seeds():
    cp = seq.power_at_most(1.0, 0.2, 0.1, 3, DESIGN, 0.01)
    v_seed = 0.2 * 3 / 10
    total = v_seed + 0.1
    assert cp == pytest.approx(critical.power(1.0, total**0.5, v_seed / total, 9, 0.01), abs=1e-3)


@pytest.mark.parametrize("k, share", [(1, 0.3), (6, 0.9), (12, 0.6)])
def test_the_family_wise_error_rate_holds_across_comparisons_and_looks(k, share):
    """Every null true: P(any comparison decided) <= α over 4,000 studies (3 Monte Carlo SE)."""
    studies = replica.draw_sequential(DESIGN.looks, np.zeros(k), share, 4000, np.random.default_rng(k))
    outcome = seq.simulate(studies.delta, studies.v_seed, studies.v_sent, DESIGN, 0.05)
    fwer = outcome.rejected.any(-1).mean()
    assert fwer <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)
    assert outcome.runs.mean() < 10 * k + 10  # futility stops most nulls before their most seeds


def test_partial_nulls_hold_too_and_real_effects_are_decided():
    effects = np.array([0.0] * 6 + [4.0] * 6)
    studies = replica.draw_sequential(DESIGN.looks, effects, 0.6, 3000, np.random.default_rng(7))
    outcome = seq.simulate(studies.delta, studies.v_seed, studies.v_sent, DESIGN, 0.05)
    assert outcome.rejected[:, :6].any(-1).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 3000)
    assert outcome.rejected[:, 6:].mean() > 0.9
    assert set(np.unique(outcome.stopped)) <= {seq.DECIDED, seq.FUTILE, seq.CAP}


def test_studies_of_arms_with_their_own_spreads_have_the_variances_drawn_and_hold_the_level():
    """``draw_nested`` with a σ and τ per arm (a real sweep's shape): Var(Δ̂) at each look is
    σ²/n + τ², the seed part's estimate is unbiased, and the family-wise error rate holds."""
    sigma, tau = np.array([0.5, 1.0, 2.0]), np.array([0.1, 0.4, 0.2])
    studies = replica.draw_nested(DESIGN.looks, np.zeros(3), sigma, tau, 20_000, np.random.default_rng(3))
    for j, n in enumerate(DESIGN.looks):
        np.testing.assert_allclose(studies.delta[..., j].var(0), sigma**2 / n + tau**2, rtol=0.05)
        np.testing.assert_allclose(studies.v_seed[..., j].mean(0), sigma**2 / n, rtol=0.05)
    np.testing.assert_allclose(studies.v_sent, tau**2)
    outcome = seq.simulate(studies.delta, studies.v_seed, studies.v_sent, DESIGN, 0.05)
    assert outcome.rejected.any(-1).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 20_000)


def test_under_max_runs_a_look_goes_to_the_comparisons_that_fit_and_the_error_rate_holds():
    """12 comparisons (half null), 3 to 10 seeds, at most 70 runs: no study spends more; where a
    look does not fit every open comparison, the first ones have it and the others stop (CUT),
    never a comparison with part of its seeds; the family-wise error over the nulls holds."""
    capped = seq.Design(3, 10, 2, max_runs=70)
    effects = np.array([0.0] * 6 + [2.0] * 6)
    studies = replica.draw_sequential(capped.looks, effects, 0.6, 3000, np.random.default_rng(11))
    outcome = seq.simulate(studies.delta, studies.v_seed, studies.v_sent, capped, 0.05)
    free = seq.simulate(studies.delta, studies.v_seed, studies.v_sent, DESIGN, 0.05)
    assert outcome.runs.max() <= 70 < free.runs.max()
    cut = outcome.stopped == seq.CUT
    assert cut.any() and set(np.unique(outcome.seeds[cut])) <= set(capped.looks)
    assert outcome.rejected[:, :6].any(-1).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 3000)
    assert outcome.rejected[:, 6:].mean() <= free.rejected[:, 6:].mean()  # the cap costs power
    assert (seq.fill([1, 2, 3, 5], 2) == [0, 0, 0, 1]).all() and seq.fill(7, 2) == 2


def test_a_comparison_with_one_seed_pair_left_stops_unpaired():
    """Two of three arm seeds diverged: no seed variance to test with; it stops, and says why."""
    one = seq.Path("one", [seq.Look(3, -1.0, 0.0, 0.02, pairs=1)])
    assert one.looks[0].p == 1.0 and seq.step([one], DESIGN, 0.05) == {"one": seq.UNPAIRED}
