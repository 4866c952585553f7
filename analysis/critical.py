"""The test behind every seed-aware comparison: critical values and p-values of ``Δ/SE`` when
``SE² = V_seed + V_sent`` and only the seed part is estimated from few degrees of freedom.

:mod:`ablab.analysis.bootstrap` estimates Δ's variance from two parts: the seeds', ``V_seed = s²_d/n``
with ``ν = n − 1`` degrees of freedom (2 for 3 seeds), and the test sentences', ``V_sent``, from
about a thousand sentences (hundreds of degrees of freedom), which this test takes as known.
With ``ρ̂ = V_seed/(V_seed + V_sent)``, the seeds' estimated share, a comparison differs at level
α where ``|Δ|/SE > c_ν(ρ̂; α)``.

**Why not Satterthwaite's degrees of freedom.** Student's t with ``df = ν/ρ̂²`` (Welch 1938,
Satterthwaite 1946; what ablab used before) rewards a seed variance that came out small by
chance twice: the SE shrinks and df grows, so the critical value shrinks with it. With 3 seeds
its false-positive rate is up to 1.5× nominal at α = 0.05 but 5× at α/12 and 14× at α/60 (6× and
19× at the worst share), the levels Holm's first steps test at
(``benchmarks/stats_calibration.py``). Student's t with ``ν`` degrees of freedom alone is valid
but, where the sentences' part is large, has almost no power (a 3-seed t₂ needs |t| > 34.6 at
α/60).

**Welch's critical function.** Under the normal model (Δ̂ normal; ``V̂_seed = V_seed·W`` with
``W ~ χ²_ν/ν``; ``V_sent`` known), with ``ρ`` the seeds' true share, the test's size is

    size_ν(ρ) = E_W[ 2·Φ̄( c(ρ̂(W)) · √(ρW + 1 − ρ) ) ],   ρ̂(W) = ρW / (ρW + 1 − ρ),

and Welch (1947) asks for the function ``c`` that makes it α at every ρ. Its ends are fixed:
``c(0) = z_{α/2}`` (no seed part: a normal test) and ``c(1) = t_{ν, α/2}`` (no sentence part:
Student's paired t, exact). Between them ``log c`` is piecewise linear over :data:`KNOTS` in ρ̂
and non-decreasing (a larger seed share never lowers the bar); its values are solved
numerically (:func:`solve`) to minimise, over ρ ∈ :data:`SHARES`, the largest deviation of
``log(size/α)``, an excess counting :data:`EXCESS_WEIGHT` times a shortfall (validity first).
The expectation is a quadrature over W (:func:`chi2_nodes`), exact to about 1e-8 relative.
Solutions for :data:`NUS` × :data:`ALPHAS` are in :data:`TABLE_PATH` (``python -m
ablab.analysis.critical`` writes it, in about two minutes); other ν interpolate ``log c`` linearly in 1/ν
(ν = ∞ being the normal test), other α linearly in ``log α``.

What they reach, size/α over seeds' true shares from 0.005 to 0.9995, with the table's
interpolation: ν ≥ 5 (6 seeds) within [0.98, 1.01] at α, α/12 and α/60; ν = 4 (5 seeds) [0.99,
1.01] at α/12 = 0.0042 and [0.89, 1.03] at α/60 = 0.00083; ν = 3 [0.89, 1.02] and [0.65, 1.08];
ν = 2 (3 seeds) [0.99, 1.00] at 0.05, [0.56, 1.08] at α/12 and [0.29, 1.22] at α/60; ν = 1 (2
seeds) [0.74, 1.06] at 0.05 but [0.10, 1.55] at α/12 and up to 2.4 at α/60. With two degrees of
freedom the estimated seed variance is below w times its truth with probability about w, so a
share that came out small is about as likely as the level itself; a critical function that
trusts it loses the level at large shares, one that does not loses it at small ones (Linnik
1968: no exact test of this kind is regular). At 3 seeds and Holm's small levels the test is
therefore mostly conservative, with little power (``benchmarks/stats_calibration.py`` prints
both); 2 seeds cannot be calibrated there at all.

p-values invert the same function: ``p`` is the α at which ``c_ν(ρ̂; α) = |Δ|/SE``, so a
comparison differs at α exactly when ``p ≤ α``. Values below ``ALPHAS[-1]`` (1e-7) are given as it.

References: B. L. Welch (1947), "The generalization of 'Student's' problem when several
different population variances are involved", Biometrika 34, 28–35; A. A. Aspin (1948), its
tables, Biometrika 35, 88–96; Yu. V. Linnik (1968), *Statistical Problems with Nuisance
Parameters* (no exact similar test of this kind is smooth for every ν).
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import time
from pathlib import Path

import numpy as np
from scipy import optimize, special
from scipy import stats as scipy_stats

TABLE_PATH = Path(__file__).resolve().parent / "critical_values.csv"
KNOTS = (1 - np.cos(np.pi * np.arange(21) / 20)) / 2  # ρ̂ at which log c is tabulated, dense at the ends
NUS = (*range(1, 21), 24, 30, 40, 60, 120)
ALPHAS = tuple(  # 0.5, 0.3, 0.2, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01, ..., 1e-7: about 1.5x apart
    float(f"{m}e{e}") for e in range(-1, -8, -1) for m in (5, 3, 2, 1, 0.7) if not (e == -7 and m < 1)
)
SHARES = np.concatenate(  # the seeds' true shares the solution is calibrated over
    [np.linspace(0.02, 0.98, 60), [0.99, 0.995, 0.998, 0.999]]
)
EXCESS_WEIGHT = 5.0  # an excess of size/α counts this many times a shortfall: validity first
QUADRATURE_NODES = 500


@functools.cache
def chi2_nodes(nu: float, nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``E[f(W)]``, ``W ~ χ²_ν/ν``: the trapezoid rule in ``s`` with
    ``u = logistic(s)`` the CDF of W, ``s ∈ [−34, 34]``, so both tails are resolved to ~1e-15."""
    s = np.linspace(-34, 34, nodes)
    lower, upper = special.expit(s), special.expit(-s)
    w = np.where(s < 0, scipy_stats.chi2.ppf(lower, nu), scipy_stats.chi2.isf(upper, nu)) / nu
    weight = lower * upper
    keep = w > 1e-200  # below, √w underflows in the size's arithmetic; its weight is ~1e-200 too
    return w[keep], weight[keep] / weight[keep].sum()


def knot_weights(share: np.ndarray) -> np.ndarray:
    """``(..., K)`` weights of the linear interpolation over :data:`KNOTS` at ``share``."""
    share = np.clip(share, 0.0, 1.0)
    i = np.clip(np.searchsorted(KNOTS, share, side="right") - 1, 0, len(KNOTS) - 2)
    f = (share - KNOTS[i]) / (KNOTS[i + 1] - KNOTS[i])
    out = np.zeros((*np.shape(share), len(KNOTS)))
    np.put_along_axis(out, i[..., None], (1 - f)[..., None], -1)
    np.put_along_axis(out, (i + 1)[..., None], f[..., None], -1)
    return out


class Size:
    """``log(size_ν(ρ)/α)`` over ``shares`` for a critical function given by ``log c`` at the
    interior knots (the ends fixed as the module says), and its Jacobian."""

    def __init__(self, nu: float, alpha: float, shares: np.ndarray = SHARES):
        w, self.weight = chi2_nodes(nu)
        rho = np.asarray(shares, dtype=float)[:, None]
        variance = rho * w + (1 - rho)
        self.scale = np.sqrt(variance)
        self.basis = knot_weights(rho * w / variance)  # (shares, nodes, K)
        self.alpha = alpha
        self.ends = np.log([scipy_stats.norm.isf(alpha / 2), scipy_stats.t.isf(alpha / 2, nu)])

    def full(self, interior: np.ndarray) -> np.ndarray:
        return np.concatenate([[self.ends[0]], interior, [self.ends[1]]])

    def __call__(self, interior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.exp(np.clip(self.basis @ self.full(interior), -20, 25)) * self.scale
        log_tail = special.log_ndtr(-c) + np.log(2 * self.weight)
        log_size = special.logsumexp(log_tail, axis=1)
        share = np.exp(log_tail - log_size[:, None])
        hazard = np.exp(scipy_stats.norm.logpdf(c) - special.log_ndtr(-c))  # φ/Φ̄, stable far out
        jacobian = -np.einsum("rg,rgk->rk", share * hazard * c, self.basis)[:, 1:-1]
        return log_size - math.log(self.alpha), jacobian


def satterthwaite_start(nu: float, alpha: float) -> np.ndarray:
    """``log c`` at the knots of Student's t with ``ν/ρ̂²`` degrees of freedom: where
    :func:`solve` starts."""
    return np.log(scipy_stats.t.isf(alpha / 2, nu / np.maximum(KNOTS, 1e-9) ** 2))


def solve(nu: float, alpha: float) -> np.ndarray:
    """``log c`` at :data:`KNOTS` minimising ``max_ρ max(EXCESS_WEIGHT·d, −d)``, ``d = log(size/α)``
    over ρ ∈ :data:`SHARES`, ``log c`` non-decreasing in ρ̂ (so from ``z_{α/2}`` to ``t_{ν, α/2}``):
    the epigraph form, by SLSQP with exact gradients."""
    size = Size(nu, alpha)
    start = np.clip(satterthwaite_start(nu, alpha)[1:-1], *size.ends)
    k = len(start)
    steps = np.diff(np.eye(len(KNOTS)), axis=0)  # (K − 1, K): log c at each knot minus the one before
    rise, rise_ends = np.hstack([steps[:, 1:-1], np.zeros((len(steps), 1))]), steps[:, [0, -1]] @ size.ends

    def constraints(z: np.ndarray) -> np.ndarray:
        d, _ = size(z[:k])
        return np.concatenate([z[k] - EXCESS_WEIGHT * d, z[k] + d])

    def constraints_jacobian(z: np.ndarray) -> np.ndarray:
        _, jac = size(z[:k])
        one = np.ones((len(jac), 1))
        return np.vstack([np.hstack([-EXCESS_WEIGHT * jac, one]), np.hstack([jac, one])])

    d0, _ = size(start)
    result = optimize.minimize(
        lambda z: z[k],
        np.concatenate([start, [EXCESS_WEIGHT * np.abs(d0).max()]]),
        jac=lambda z: np.eye(k + 1)[k],
        method="SLSQP",
        constraints=[
            {"type": "ineq", "fun": constraints, "jac": constraints_jacobian},
            {"type": "ineq", "fun": lambda z: rise @ z + rise_ends, "jac": lambda z: rise},
        ],
        options={"maxiter": 1000, "ftol": 1e-12},
    )
    return size.full(result.x[:k])


@functools.cache
def _table() -> dict[int, np.ndarray]:
    """ν -> ``(len(ALPHAS), len(KNOTS))`` log critical values, read from :data:`TABLE_PATH`."""
    rows: dict[int, dict[float, np.ndarray]] = {}
    with TABLE_PATH.open() as f:
        for row in csv.DictReader(f):
            values = np.log([float(row[f"c{i}"]) for i in range(len(KNOTS))])
            rows.setdefault(int(row["nu"]), {})[float(row["alpha"])] = values
    return {nu: np.stack([by_alpha[a] for a in ALPHAS]) for nu, by_alpha in rows.items()}


def log_critical_table(nu: float) -> np.ndarray:
    """``(len(ALPHAS), len(KNOTS))`` log critical values for ν seeds' degrees of freedom."""
    if nu < 1:
        raise ValueError(f"a seed-level test needs at least 2 seeds (ν ≥ 1), got ν = {nu}")
    table, nus = _table(), np.array(NUS, dtype=float)
    if nu in table:
        return table[nu]
    normal = np.repeat(np.log(scipy_stats.norm.isf(np.array(ALPHAS) / 2))[:, None], len(KNOTS), axis=1)
    if nu > nus[-1]:
        low, high, f = table[NUS[-1]], normal, (1 / nus[-1] - 1 / nu) / (1 / nus[-1])
    else:
        j = int(np.searchsorted(nus, nu))
        low, high = table[NUS[j - 1]], table[NUS[j]]
        f = (1 / nus[j - 1] - 1 / nu) / (1 / nus[j - 1] - 1 / nus[j])
    return (1 - f) * low + f * high


def critical_value(alpha: float, share: float | np.ndarray, nu: float) -> np.ndarray:
    """``c_ν(ρ̂; α)`` at the seeds' estimated share(s) ``share``: log-linear in α between tabulated
    levels, linear in α from ``ALPHAS[0]`` to c = 0 at α = 1 (as :func:`p_value`), ``ALPHAS[-1]``'s
    below the table; at ρ̂ = 0 and 1 exactly the normal and Student's quantiles at any α."""
    share = np.asarray(share, dtype=float)
    log_c = knot_weights(share) @ log_critical_table(nu).T  # (..., A)
    if alpha > ALPHAS[0]:
        inside = np.exp(log_c[..., 0]) * (1 - alpha) / (1 - ALPHAS[0])
    else:
        x, at = -np.log(ALPHAS), -math.log(max(alpha, ALPHAS[-1]))  # x increasing
        j = int(np.clip(np.searchsorted(x, at), 1, len(x) - 1))
        f = (at - x[j - 1]) / (x[j] - x[j - 1])
        inside = np.exp((1 - f) * log_c[..., j - 1] + f * log_c[..., j])
    ends = np.where(share >= 1, scipy_stats.t.isf(alpha / 2, nu), scipy_stats.norm.isf(alpha / 2))
    return np.where((share <= 0) | (share >= 1), ends, inside)


def p_value(t: float | np.ndarray, share: float | np.ndarray, nu: float) -> np.ndarray:
    """The α at which ``c_ν(ρ̂; α) = |t|`` (log α linear between tabulated levels; from
    ``ALPHAS[0]`` to 1 linear in c towards c = 0 at α = 1; ``ALPHAS[-1]`` beyond the table; at
    ρ̂ = 0 and 1 exactly the normal and Student's p-values)."""
    t, share = np.broadcast_arrays(np.abs(np.asarray(t, dtype=float)), np.asarray(share, dtype=float))
    log_c = knot_weights(share) @ log_critical_table(nu).T  # (..., A), increasing along A
    log_t = np.log(np.maximum(t, 1e-300))
    j = np.clip((log_c < log_t[..., None]).sum(-1), 1, len(ALPHAS) - 1)
    lower = np.take_along_axis(log_c, (j - 1)[..., None], -1)[..., 0]
    upper = np.take_along_axis(log_c, j[..., None], -1)[..., 0]
    f = np.clip((log_t - lower) / (upper - lower), 0.0, 1.0)
    log_a = np.log(ALPHAS)
    p = np.exp((1 - f) * log_a[j - 1] + f * log_a[j])
    top = np.exp(log_c[..., 0])
    inside = np.where(t < top, 1 - (1 - ALPHAS[0]) * t / top, p)
    ends = np.where(share >= 1, 2 * scipy_stats.t.sf(t, nu), 2 * scipy_stats.norm.sf(t))
    return np.where((share <= 0) | (share >= 1), ends, inside)


POWER_CHUNK = 4096
"""Comparisons whose power is integrated at once (memory: chunk × nodes × levels)."""


def power(effect, se, share, nu: float, alpha: float, nodes: int = QUADRATURE_NODES):
    """P(the test at level α finds a true Δ = ``effect``) when SE² = ``se²`` of which the seeds'
    part is ``share``: ``E_W[Φ̄(c·√(ρW + 1 − ρ) − δ) + Φ(−c·√(ρW + 1 − ρ) − δ)]``, δ = |effect|/se
    (at ρ = 0 the normal test's power exactly; SE = 0: 1 if there is an effect, else 0). Scalars
    or arrays of comparisons alike; ``nodes`` of the χ² quadrature."""
    effect, se, share = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (effect, se, share)))
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(se > 0, np.abs(effect) / se, 0.0).ravel()
    share = np.clip(share, 0.0, 1.0).ravel()
    normal = float(scipy_stats.norm.isf(alpha / 2))
    out = special.ndtr(delta - normal) + special.ndtr(-normal - delta)  # no seed part: the normal test
    seeded = np.flatnonzero(share > 0)
    if seeded.size:
        w, weight = chi2_nodes(nu, nodes)
        for start in range(0, seeded.size, POWER_CHUNK):
            rows = seeded[start : start + POWER_CHUNK]
            rho, d = share[rows, None], delta[rows, None]
            variance = rho * w + (1 - rho)
            c = critical_value(alpha, rho * w / variance, nu) * np.sqrt(variance)
            out[rows] = (weight * (special.ndtr(d - c) + special.ndtr(-c - d))).sum(-1)
    out = np.where(se.ravel() > 0, out, (effect.ravel() != 0).astype(float)).reshape(effect.shape)
    return float(out) if out.ndim == 0 else out


def write_table(path: Path = TABLE_PATH) -> None:
    """Solve every ν × α of the table and write it, ``c`` made decreasing in α."""
    started = time.monotonic()
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["nu", "alpha", *(f"c{i}" for i in range(len(KNOTS)))])
        for nu in NUS:
            previous = np.full(len(KNOTS), -np.inf)
            raised = 0.0
            for alpha in ALPHAS:
                solved = solve(nu, alpha)
                log_c = np.maximum(solved, previous + 1e-6)  # strictly: every |t| has one p
                raised, previous = max(raised, float(np.max(log_c - solved))), log_c
                out.writerow([nu, alpha, *(f"{v:.7g}" for v in np.exp(log_c))])
            print(
                f"ν = {nu}: {time.monotonic() - started:.0f} s; monotone in α by ≤ {raised:.3f} in log c",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Solve and write Welch's critical values.")
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    write_table(parser.parse_args().out)
