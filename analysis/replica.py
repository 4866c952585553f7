"""A comparison's statistics drawn from their exact distributions: hundreds of thousands of
studies in seconds, to measure false-positive rates at Holm's small levels (α/60 = 0.00083 needs
about 10⁵ studies per cell to be seen at all; :mod:`ablab.analysis.simulation`, which draws every
sentence of every run and resamples them, affords a thousand).

The normal model of a seeds × sentences layout, per seed s and test sentence j, the arm's
difference from the baseline being ``Δ + a_s + u_j + e_sj``: ``a_s`` the seeds' own effects
(what pairing by seed does not cancel), ``u_j`` how the two systems differ on sentence j
(the same for every seed: the test set's sample), ``e_sj`` which sentences one seed's pair of
runs happens to get right. With ``n`` seeds and ``m`` sentences, the quantities
:func:`ablab.analysis.bootstrap.contrast` computes are, in units of Var(Δ̂) = 1, with ``q`` the
sentences' share of it and ``φ`` the share of the seed part that is seed × sentence noise,

    Δ̂      ~ N(δ, 1)
    V_seed ~ (1 − q) · χ²_{n−1} / (n − 1)
    V_all  ~ (q + φ(1 − q)) · χ²_{m−1} / (m − 1)
    R      ~ φ(1 − q) · χ²_{(m−1)(n−1)} / ((m − 1)(n − 1)),   V_each = V_all + (n − 1)·R,

independent of each other (the seed means, sentence means and interaction of a two-way layout):
``V_all`` is ``(σ²_u + σ²_e/n)/m`` estimated, ``R`` is ``σ²_e/(n·m)``. The bootstrap's ``V_all``
and ``V_each`` are these up to the resampling noise of B = 10,000 replicates. Each study then goes
through ablab's own formulas, :func:`~ablab.analysis.bootstrap.sentence_component` and
:func:`~ablab.analysis.bootstrap.seed_test`, or through the method they replaced
(:func:`satterthwaite_p`). Paired and unpaired seeds differ only in ``q``: pairing removes from
the seed part what the two runs of a seed share, so the sentences' share grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from ablab.analysis.bootstrap import seed_test, sentence_component

SENTENCES = 1000  # test_2016_flickr
NOISE_SHARE = 0.5  # φ: of the seed part, the seed × sentence noise (the real baseline: ~0.8)


@dataclass(frozen=True)
class Studies:
    """Many studies' statistics, one array entry per study."""

    delta: np.ndarray
    v_seed: np.ndarray
    v_all: np.ndarray
    v_each: np.ndarray
    n: int
    m: int


def draw(
    n: int,
    share: float,
    studies: int,
    rng: np.random.Generator,
    effect: float = 0.0,
    m: int = SENTENCES,
    noise: float = NOISE_SHARE,
) -> Studies:
    """``studies`` draws of the module's model: ``n`` seeds, the sentences' share ``share`` of
    Var(Δ̂) = 1, a true Δ of ``effect`` (in units of Δ̂'s sd)."""
    seed_part = 1 - share
    v_all = (share + noise * seed_part) * rng.chisquare(m - 1, studies) / (m - 1)
    interaction_df = (m - 1) * (n - 1)
    r = noise * seed_part * rng.chisquare(interaction_df, studies) / interaction_df
    return Studies(
        delta=rng.normal(effect, 1.0, studies),
        v_seed=seed_part * rng.chisquare(n - 1, studies) / (n - 1),
        v_all=v_all,
        v_each=v_all + (n - 1) * r,
        n=n,
        m=m,
    )


def welch_p(s: Studies) -> np.ndarray:
    """ablab's p-values: Welch's critical function of the seeds' share."""
    v_sent = sentence_component(s.v_all, s.v_each, s.n, s.m)
    return seed_test(s.delta, s.v_seed, v_sent, s.n)[1]


def satterthwaite_p(s: Studies) -> np.ndarray:
    """The method before: Student's t with Satterthwaite's degrees of freedom,
    ``df = SE⁴ / (V_seed²/(n − 1) + V_sent²/df_sent)``, ``df_sent`` those of ``V_sent`` as a
    difference of two mean squares."""
    r = np.maximum(0.0, (s.v_each - s.v_all) / (s.n - 1))
    v_sent = np.maximum(0.0, s.v_all - r)
    df_sent = v_sent**2 / (s.v_all**2 / (s.m - 1) + r**2 / ((s.m - 1) * (s.n - 1)))
    se2 = s.v_seed + v_sent
    with np.errstate(divide="ignore", invalid="ignore"):
        df = se2**2 / (s.v_seed**2 / (s.n - 1) + np.where(v_sent > 0, v_sent**2 / df_sent, 0.0))
    return 2 * scipy_stats.t.sf(np.abs(s.delta) / np.sqrt(se2), df)


@dataclass(frozen=True)
class SequentialStudies:
    """Many studies of ``k`` comparisons against one baseline, each seen at every look:
    ``delta`` and ``v_seed`` are ``(studies, k, looks)``, ``v_sent`` the test set's part (one
    for all, or one per comparison)."""

    delta: np.ndarray
    v_seed: np.ndarray
    v_sent: float | np.ndarray
    seeds: tuple[int, ...]


def draw_sequential(
    seeds: list[int],
    effects: np.ndarray,
    share: float,
    studies: int,
    rng: np.random.Generator,
) -> SequentialStudies:
    """Studies of ``len(effects)`` arms against one baseline with seeds nested across looks (the
    look at ``seeds[j]`` sees the first ``seeds[j]`` seeds), in units of Var(Δ̂) = 1 at the first
    look, of which the seeds' share is ``share``: :func:`draw_nested` with ``σ² = share·seeds[0]``
    and ``τ² = 1 − share`` for every arm; ``effects`` in those units."""
    return draw_nested(seeds, effects, np.sqrt(share * seeds[0]), np.sqrt(1 - share), studies, rng)


def draw_nested(
    seeds: list[int],
    effects: np.ndarray,
    sigma: float | np.ndarray,
    tau: float | np.ndarray,
    studies: int,
    rng: np.random.Generator,
) -> SequentialStudies:
    """Studies of ``len(effects)`` arms against one baseline, seeds nested across looks. Arm i's
    difference at seed s is ``Δ_i + σ_i(a_is − b_s)/√2``: ``σ_i²`` the variance of its paired
    differences over seeds, ``b_s`` the baseline's seed, shared by every arm (their comparisons
    correlate 0.5); its test-set part ``τ_i(x_i − y)/√2`` is the same at every look (one test
    set), ``y`` shared too. ``sigma`` and ``tau`` are one for all arms or one per arm. The test
    takes ``V_sent = τ²`` as known, as ablab's does (hundreds of degrees of freedom from a
    thousand sentences)."""
    effects = np.asarray(effects, dtype=float)
    k, most = len(effects), max(seeds)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (k,))
    tau = np.broadcast_to(np.asarray(tau, dtype=float), (k,))
    per_seed = effects[None, :, None] + sigma[None, :, None] * (
        rng.standard_normal((studies, k, most)) - rng.standard_normal((studies, 1, most))
    ) / np.sqrt(2)
    test_set = tau * (rng.standard_normal((studies, k)) - rng.standard_normal((studies, 1))) / np.sqrt(2)
    delta = np.stack([per_seed[..., :n].mean(-1) for n in seeds], -1) + test_set[..., None]
    v_seed = np.stack([per_seed[..., :n].var(-1, ddof=1) / n for n in seeds], -1)
    v_sent = float(tau[0] ** 2) if np.all(tau == tau[0]) else tau**2
    return SequentialStudies(delta, v_seed, v_sent, tuple(seeds))
