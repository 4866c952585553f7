"""Seeds spent where a decision is pending: a group-sequential design over seeds that holds the
family-wise error rate across every comparison and every look.

The design (a spec's ``seeds: {initial, max, step}``): each comparison starts with ``initial``
seeds of its arm and of the baseline, paired; at each look its p-value is that of the calibrated
test on the seeds it has (:func:`ablab.analysis.bootstrap.seed_test`), and a comparison still
undecided, not futile and below ``max`` seeds gets ``step`` more.

**Error control.** A comparison's level is spent over its looks by ``f(t) = t^ρ`` (the power
family of Kim & DeMets 1987), ``t = n / max`` the share of its most seeds: information counted in
seeds and fixed in advance, never estimated from the data. ρ = 5 spends almost nothing early
(more sparingly still than O'Brien & Fleming 1979's boundary, which ρ ≈ 3 approximates; seeds
3..10 by 2 spend 83 % at their last look): the early looks are for futility, which saves most
runs, and the last look keeps the power a fixed design would have. ρ and the futility level
were chosen on ``benchmarks/sequential_fwer.py``: with 6 real effects among 12 comparisons,
ρ = 3 and 10 % decided 0.92 of what 10 fixed seeds decide for 62 % of their runs; ρ = 5 and
20 %, 0.95 for 59 %. Its sequential p-value

    q = min over looks l of  p_l / (f(t_l) − f(t_{l−1}))

is valid whatever the correlation of its looks: q ≤ α only if some p_l ≤ α·Δf_l, which has
probability at most Σ α·Δf_l = α (Bonferroni across looks); stopping early, or a look the
``max_runs`` cap leaves out, only removes looks, so it can only raise q. (This takes each p_l as
valid at the small level its look spends: at the first look, 3 seeds and 0.24 % of the level,
the calibrated test's rate is up to about 3× nominal where the seeds carry nearly all the
variance, which adds under 0.0005 to the family's error rate.) A look's p is that of the seeds it
pairs: a seed whose run diverged (or has no score) is left out of the pairs and of the degrees of
freedom; its information index stays the look's planned seeds, fixed in advance.

Holm's step-down (1979) over the family's q's, at every look, rejects at each look a superset of
the last (q never rises) and at the end is Holm over valid p-values: the family-wise error rate
is at most α over all comparisons and looks, whatever their dependence (arms share the
baseline's seeds). This is the graphical procedure of Bretz et al. (2009) with Holm's graph and
a group-sequential test at each node (Maurer & Bretz 2013), with Bonferroni across looks where
they use multivariate-normal boundaries: those need the looks' correlation, which paired seeds
with two degrees of freedom do not estimate.

**Futility** is non-binding (stopping a comparison never raises the error rate): a comparison
stops as futile when its power at its most seeds is below :data:`FUTILITY_POWER`: the
probability that a test at ``max`` seeds, at all the level the comparison has left (its Holm
share times 1 − f(t)), finds the current estimate taken as the truth (the seeds' variance
scaled to ``max`` seeds; the test set's part stays). It is not conditioned on the seeds already
run, and the last look spends less than all that is left, so it stops fewer comparisons than a
conditional power would: a choice on the side of power, tuned with the benchmark.

**Repeated confidence intervals** (Jennison & Turnbull 1989): at each look, Δ̂ ± c·SE with the
critical value of the level the look spends of α/k (:func:`boundary`); a comparison decided at
Holm's first step has its interval excluding 0, one decided at a later step (a larger level)
may not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ablab.analysis import critical
from ablab.analysis.bootstrap import seed_test

SPENDING_EXPONENT = 5.0
"""ρ of the spending function f(t) = t^ρ."""
POWER_NODES = 64  # quadrature nodes of the power at the most seeds
FUTILITY_POWER = 0.20
"""A comparison whose power at its most seeds (:func:`power_at_most`) is below this stops as futile."""
DECIDED, FUTILE, CAP = "decided", "futile", "reached its most seeds"
UNPAIRED, CUT = "unpaired", "max_runs reached"
WAITING = "waiting for seeds"  # open: its next look still running
"""Why a comparison stopped: its sequential p passed Holm's level; it could not pass it at its
most seeds; it had them and did not pass; it has fewer than 2 seed pairs (its or the baseline's
runs diverged), so no seed variance to test with; the design's ``max_runs`` left no room for its
next look."""


@dataclass(frozen=True)
class Design:
    """Seeds at each look: ``initial``, then ``step`` more until ``maximum`` (the last look has
    exactly ``maximum``; a look within half a step of it is left out: two looks at nearly the same
    seeds would split the level for nothing, and the last look is the one with the power)."""

    initial: int
    maximum: int
    step: int
    max_runs: int | None = None  # the most runs, every arm's and the baseline's (None: no cap)

    def __post_init__(self):
        if not 2 <= self.initial <= self.maximum or self.step < 1:
            got = f"initial {self.initial}, max {self.maximum}, step {self.step}"
            raise ValueError(f"seeds: need 2 <= initial <= max and step >= 1, got {got}")

    @property
    def looks(self) -> list[int]:
        before = [n for n in range(self.initial, self.maximum, self.step) if self.maximum - n > self.step / 2]
        return [*(before or [self.initial] * (self.initial < self.maximum)), self.maximum]

    def spent(self, seeds: int) -> float:
        """f(t): the share of a comparison's level spent by the look at ``seeds``."""
        return min(1.0, seeds / self.maximum) ** SPENDING_EXPONENT

    def increment(self, seeds: int) -> float:
        """Δf of the look at ``seeds``: what that look spends."""
        before = [n for n in self.looks if n < seeds]
        return self.spent(seeds) - (self.spent(before[-1]) if before else 0.0)


@dataclass(frozen=True)
class Look:
    """One comparison at one look: its estimate and the two parts of its variance."""

    seeds: int  # the look's planned seeds: its information index
    delta: float
    v_seed: float  # s²_d / n: the seeds' part of Var(Δ̂)
    v_sent: float  # the test sentences' part
    pairs: int | None = None  # n, the seed pairs the estimate rests on; None: every seed's

    @property
    def n(self) -> int:
        return self.seeds if self.pairs is None else self.pairs

    @property
    def se(self) -> float:
        return math.sqrt(self.v_seed + self.v_sent)

    @property
    def share(self) -> float:
        total = self.v_seed + self.v_sent
        return self.v_seed / total if total > 0 else 1.0

    @property
    def p(self) -> float:
        return float(seed_test(self.delta, self.v_seed, self.v_sent, self.n)[1]) if self.n >= 2 else 1.0


@dataclass
class Path:
    """A comparison's looks so far, and why it stopped (None while it goes on)."""

    name: str
    looks: list[Look] = field(default_factory=list)
    stopped: str | None = None

    def q(self, design: Design) -> float:
        """The sequential p-value: min over looks of p / Δf."""
        return min((min(1.0, look.p / design.increment(look.seeds)) for look in self.looks), default=1.0)


def holm_rejects(q: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down at ``alpha`` over the last axis (a family per row): which are rejected."""
    q = np.atleast_2d(q)
    k = q.shape[-1]
    order = np.argsort(q, axis=-1, kind="stable")
    ranked = np.take_along_axis(q, order, -1)
    passes = ranked <= alpha / (k - np.arange(k))
    prefix = np.cumprod(passes, axis=-1).astype(bool)  # step-down: stop at the first that fails
    out = np.zeros_like(prefix)
    np.put_along_axis(out, order, prefix, -1)
    return out


def power_at_most(delta, v_seed, v_sent, seeds, design: Design, level: float) -> np.ndarray:
    """P(the test at ``design.maximum`` seeds and ``level`` finds Δ = ``delta``), the seeds'
    variance per seed as estimated from ``seeds`` pairs (``v_seed`` = s²_d/seeds), the test set's
    part unchanged; arrays of comparisons alike. The seeds' variance estimate at the maximum is
    integrated over its χ² law (:data:`POWER_NODES` nodes: a stopping rule, not a test)."""
    delta, v_seed, v_sent = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (delta, v_seed, v_sent))
    )
    if level <= 0:
        return np.zeros(delta.shape)
    v_seed = v_seed * np.asarray(seeds, dtype=float) / design.maximum
    total = v_seed + v_sent
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, v_seed / total, 1.0)
    return np.asarray(critical.power(delta, np.sqrt(total), share, design.maximum - 1, level, POWER_NODES))


def boundary(look: Look, design: Design, alpha: float, family: int) -> tuple[float, float]:
    """The repeated confidence interval of a look: Δ̂ ± c·SE at the level the look spends of the
    comparison's Holm share (α / ``family``)."""
    level = alpha / max(family, 1) * design.increment(look.seeds)
    c = float(critical.critical_value(level, look.share, max(look.n, 2) - 1))
    return look.delta - c * look.se, look.delta + c * look.se


def advance(
    q: np.ndarray,
    open_: np.ndarray,
    seeds: int,
    delta,
    v_seed,
    v_sent,
    design: Design,
    alpha: float,
    pairs=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One look's decisions for families of comparisons (arrays ``(families, k)``; the open ones
    just looked at ``seeds``, each estimated from ``pairs`` seed pairs, default ``seeds``): which
    are rejected by Holm over the sequential ``q``'s (open or stopped), which open ones have
    reached their cap, and which open ones are futile: their power at the most seeds, at the
    level they could still spend (Holm's largest share, α over the hypotheses not rejected, times
    what their looks have not spent), is below :data:`FUTILITY_POWER`."""
    delta, v_seed, v_sent, pairs = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (delta, v_seed, v_sent, seeds if pairs is None else pairs))
    )
    rejected = holm_rejects(q, alpha)
    capped = open_ & ~rejected & (seeds >= design.maximum)
    futile = np.zeros_like(capped)
    candidates = open_ & ~rejected & ~capped
    remaining = q.shape[-1] - rejected.sum(-1, keepdims=True) + np.zeros_like(q, dtype=int)
    for family in np.unique(remaining[candidates]):
        at = candidates & (remaining == family)
        level = alpha / family * (1.0 - design.spent(seeds))
        power = power_at_most(delta[at], v_seed[at], v_sent[at], pairs[at], design, level)
        futile[at] = power < FUTILITY_POWER
    return rejected, capped, futile


def step(paths: list[Path], design: Design, alpha: float, looked: set[str] | None = None) -> dict[str, str]:
    """Decide after a look (``looked``: the open paths that have just had it, all at the same
    seeds; default every open one) by :func:`advance`: a path that passes Holm is decided; a
    looked one at its most seeds capped, one with fewer than 2 seed pairs unpaired, one without
    the power to pass futile; one stopped as futile or capped that passes now (others'
    rejections raised its Holm level) is decided. Returns the paths whose state changed, with
    why; the open ones left need the next look."""
    looked = {p.name for p in paths} if looked is None else looked
    open_ = np.array([[p.stopped is None and p.name in looked for p in paths]])
    newest = [p.looks[-1] if p.looks else Look(0, 0.0, 0.0, 0.0) for p in paths]
    seeds = max((look.seeds for look, o in zip(newest, open_[0], strict=True) if o), default=design.maximum)
    rejected, capped, futile = advance(
        np.array([[p.q(design) for p in paths]]),
        open_,
        seeds,
        np.array([[look.delta for look in newest]]),
        np.array([[look.v_seed for look in newest]]),
        np.array([[look.v_sent for look in newest]]),
        design,
        alpha,
        np.array([[look.n for look in newest]]),
    )
    unpaired = open_ & np.array([[look.n < 2 for look in newest]])
    changed = {}
    for i, path in enumerate(paths):
        now = (
            DECIDED
            if rejected[0, i]
            else UNPAIRED
            if unpaired[0, i]
            else CAP
            if capped[0, i]
            else FUTILE
            if futile[0, i]
            else path.stopped
        )
        if now != path.stopped and path.stopped != DECIDED:
            path.stopped = changed[path.name] = now
    return changed


@dataclass(frozen=True)
class Outcome:
    """The procedure run on many studies: per study and comparison, rejected or not, why it
    stopped, and the arm seeds it used; the baseline needs as many as its most demanding arm."""

    rejected: np.ndarray  # (studies, k)
    stopped: np.ndarray  # (studies, k): DECIDED, FUTILE, CAP
    seeds: np.ndarray  # (studies, k)

    @property
    def runs(self) -> np.ndarray:
        """Runs per study: every arm's seeds and the baseline's."""
        return self.seeds.sum(-1) + self.seeds.max(-1)


def simulate(
    delta: np.ndarray,
    v_seed: np.ndarray,
    v_sent: float | np.ndarray,
    design: Design,
    alpha: float,
) -> Outcome:
    """The design on studies whose statistics at every look are given (``(studies, k, looks)``,
    looks at ``design.looks``): each look's p, the sequential q of the comparisons that have it,
    :func:`advance`; the rejections at the end are Holm's over the final q's. Under
    ``design.max_runs`` a look is launched as the sweep launches it (:func:`fill`): the baseline's
    new seeds, then each open comparison's in order while they fit; those left out stop (CUT)."""
    studies, k, _ = delta.shape
    q = np.ones((studies, k))
    open_ = np.ones((studies, k), dtype=bool)
    stopped = np.full((studies, k), "", dtype=object)
    used = np.zeros((studies, k), dtype=int)
    runs = np.zeros(studies, dtype=int)
    before = 0
    for j, n in enumerate(design.looks):
        if design.max_runs is not None and j > 0:
            fits = fill(design.max_runs - runs, n - before)
            cut = open_ & (np.cumsum(open_, axis=-1) > fits[:, None])
            stopped[cut] = CUT
            open_ &= ~cut
        runs += (n - before) * (open_.sum(-1) + open_.any(-1))
        p = seed_test(delta[..., j], v_seed[..., j], v_sent, n)[1]
        q = np.where(open_, np.minimum(q, np.minimum(1.0, p / design.increment(n))), q)
        used = np.where(open_, n, used)
        rejected, capped, futile = advance(q, open_, n, delta[..., j], v_seed[..., j], v_sent, design, alpha)
        for mask, why in ((rejected & open_, DECIDED), (capped, CAP), (futile, FUTILE)):
            stopped[mask] = why
        open_ &= ~(rejected | capped | futile)
        before = n
        if not open_.any():
            break
    rejected = holm_rejects(q, alpha)
    stopped[rejected] = DECIDED
    return Outcome(rejected, stopped, used)


def fill(room, block: int):
    """How many comparisons' next look fit in ``room`` runs (arrays alike), each ``block`` new
    seeds of its arm after as many of the baseline's (which every arm pairs with): none unless
    the baseline's and one arm's fit, so that no run is launched for a look nobody can have."""
    room = np.asarray(room)
    return np.where(room >= 2 * block, (room - block) // block, 0)


def replay(
    looks_at: Callable[[int], dict[str, Look]], names: list[str], design: Design, alpha: float
) -> tuple[list[Path], int | None]:
    """The procedure replayed look by look: at each of the design's looks the open comparisons'
    :class:`Look` at that many seeds (``looks_at(n)``, which leaves out a comparison whose seeds
    are not all in), then :func:`step` over those that have it. Returns the paths, and the seeds
    of the look that is waiting for runs (None once every comparison has stopped): the same runs
    give the same looks and decisions, so nothing but the runs needs keeping. A look that some
    comparisons have and others not (the cap left their seeds out) is taken by those that have
    it: each one's q is valid on its own, whichever of its looks are taken."""
    paths = [Path(name) for name in names]
    for seeds in design.looks:
        waiting = [p for p in paths if p.stopped is None]
        if not waiting:
            return paths, None
        at = looks_at(seeds)
        present = [p for p in waiting if p.name in at]
        for path in present:
            path.looks.append(at[path.name])
        if present:
            step(paths, design, alpha, {p.name for p in present})
        if len(present) < len(waiting):  # its runs are still to come, or max_runs left them out
            return paths, seeds
    return paths, None
