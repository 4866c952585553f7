"""Welch's critical function: the quadrature against closed forms, the committed table against
its solver, its sizes where the module says they are, and p-values that invert critical values."""

import numpy as np
import pytest
from scipy import special
from scipy import stats as scipy_stats

from ablab.analysis import critical


def size(nu, alpha, shares):
    """size_ν(ρ)/α of the tabulated function (with its interpolation in α), by quadrature."""
    w, weight = critical.chi2_nodes(nu)
    rho = np.asarray(shares)[:, None]
    scale = np.sqrt(rho * w + (1 - rho))
    c = critical.critical_value(alpha, rho * w / scale**2, nu) * scale
    return (2 * special.ndtr(-c) * weight).sum(1) / alpha


@pytest.mark.parametrize("nu", [1, 2, 9])
def test_the_quadrature_gives_student_s_tails_in_closed_form(nu):
    w, weight = critical.chi2_nodes(nu)
    for alpha in (0.05, 1e-3, 1e-6):
        q = scipy_stats.t.isf(alpha / 2, nu)  # P(|Z| > q·√W) for W ~ χ²_ν/ν is Student's tail
        assert (2 * special.ndtr(-q * np.sqrt(w)) * weight).sum() == pytest.approx(alpha, rel=1e-6)


def test_the_committed_table_is_what_the_solver_makes():
    table = critical.log_critical_table(4)
    for alpha in (0.05, 0.005):
        solved = critical.solve(4, alpha)
        row = table[critical.ALPHAS.index(alpha)]
        assert np.exp(row) == pytest.approx(np.exp(solved), rel=2e-3)


@pytest.mark.parametrize(
    ("nu", "alpha", "low", "high"),
    [
        (2, 0.05, 0.98, 1.01),
        (2, 0.05 / 12, 0.55, 1.09),
        (2, 0.05 / 60, 0.28, 1.23),  # 3 seeds at Holm's small levels: mostly conservative (docstring)
        (3, 0.05 / 60, 0.64, 1.09),
        (4, 0.05 / 12, 0.98, 1.02),
        (4, 0.05 / 60, 0.88, 1.04),
        (9, 0.05 / 60, 0.97, 1.03),
        (25, 0.05 / 60, 0.97, 1.03),  # between tabulated ν
        (500, 0.05 / 60, 0.97, 1.03),  # beyond them, towards the normal test
    ],
)
def test_sizes_are_where_the_module_says(nu, alpha, low, high):
    sizes = size(nu, alpha, np.concatenate([np.linspace(0.005, 0.98, 40), np.linspace(0.98, 0.9995, 20)]))
    assert low <= sizes.min() and sizes.max() <= high, (sizes.min(), sizes.max())


def test_satterthwaite_s_degrees_of_freedom_lose_the_level_the_table_holds():
    nu, alpha = 2, 0.05 / 60
    w, weight = critical.chi2_nodes(nu)
    rho = 0.9
    scale = np.sqrt(rho * w + (1 - rho))
    share = rho * w / scale**2
    satterthwaite = scipy_stats.t.isf(alpha / 2, nu / share**2) * scale
    assert (2 * special.ndtr(-satterthwaite) * weight).sum() / alpha > 10


def test_p_values_invert_critical_values_and_are_exact_at_the_ends():
    rng = np.random.default_rng(0)
    for nu in (1, 2, 4, 13, 50):
        shares = rng.uniform(0.001, 0.999, 20)
        for alpha in (0.8, 0.3, 0.05, 0.01, 0.05 / 12, 0.05 / 60, 3e-5, 4e-7):
            c = critical.critical_value(alpha, shares, nu)
            assert critical.p_value(c, shares, nu) == pytest.approx(alpha, rel=1e-9)
        t = np.linspace(0, 50, 400)
        p = critical.p_value(t, 0.4, nu)
        assert p[0] == pytest.approx(1.0) and np.all(np.diff(p) <= 1e-15)  # larger |t|, smaller p
        assert critical.p_value(2.5, 1.0, nu) == pytest.approx(2 * scipy_stats.t.sf(2.5, nu))
        assert critical.p_value(2.5, 0.0, nu) == pytest.approx(2 * scipy_stats.norm.sf(2.5))
        assert critical.critical_value(0.01, 1.0, nu) == pytest.approx(scipy_stats.t.isf(0.005, nu))
    assert critical.p_value(1e9, 0.5, 3) == pytest.approx(critical.ALPHAS[-1])  # beyond the table: its floor
    with pytest.raises(ValueError, match="at least 2 seeds"):
        critical.log_critical_table(0)
