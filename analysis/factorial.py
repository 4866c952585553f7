"""Crossed designs: a group whose settings cross two or more factors, read as a design.

A **factor** is a set of config keys that move together across the group's settings: a grid
axis, a zip's keys (one factor), the keys its arms change. Two keys are one factor where the
value of one determines the other's over the group's settings; crossed axes never do. A group
is **crossed** when it has two or more factors with two or more levels each and a setting for
every combination of their levels (a full factorial). The design is read from the runs' configs
alone, so a report of an experiment needs no spec.

Each factor has a **reference level**: the baseline's, where the baseline is one of the cells,
else the first level the spec declares (its first arm or axis value; without a spec, the first
in the runs' order, said so in the report). The contrasts are those of treatment coding, each
averaged over the levels of the factors it does not involve (``cell(·)`` a setting's score,
``ref`` the reference):

- **main effect** of factor F at level l: ``mean(cell(F = l)) − mean(cell(F = ref))``;
- **interaction** of factors F1 … Fk at levels l1 … lk (k ≥ 2): the effect of F2 … Fk at
  ``F1 = l1`` minus the same effect at ``F1 = ref``; in a 2 × 2,
  ``(cell(l1, l2) − cell(l1, ref)) − (cell(ref, l2) − cell(ref, ref))``, a difference of
  differences (in Xiong et al. 2020, warmup matters with post-LN and not with pre-LN);
- **simple effect** of F1 at ``F2 = l``: ``mean(cell(F1 = l1, F2 = l)) − mean(cell(F1 = ref,
  F2 = l))``. Where a two-factor interaction is real (its verdict is *differs*, or its estimate
  is larger than one of its factors' main effects), a main effect averages effects that differ,
  and each factor's effect at each level of the other is what a reader asks:
  :mod:`ablab.analysis.verdicts` then adds these to the primary family.

Every contrast is one :func:`ablab.analysis.bootstrap.contrast` (seeds and test sentences), decided
with the report's other comparisons of its metric's Holm family.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

Level = tuple[str, ...]  # one value per key of the factor, as the spec wrote them
Cell = tuple[Level, ...]  # one level per factor
Weights = dict[Cell, float]

MAIN = "main effect"
INTERACTION = "interaction"
SIMPLE = "simple effect"


@dataclass(frozen=True)
class Factor:
    keys: tuple[str, ...]
    levels: tuple[Level, ...]  # the reference first, then the others (numeric order where numbers)

    @property
    def name(self) -> str:
        return " + ".join(self.keys)

    def label(self, level: Level) -> str:
        return ", ".join(level)

    @property
    def reference(self) -> Level:
        return self.levels[0]


@dataclass(frozen=True)
class Contrast:
    """``Σ plus − Σ minus`` over cells. A main effect's parts are the means at the level and at
    the reference; an interaction's are the ``inner`` effect at the first factor's level
    (``after``) and at its reference (``before``)."""

    kind: str  # MAIN, INTERACTION or SIMPLE
    label: str  # "schedule.warmup_steps 200 → 0", "schedule.warmup_steps 200 → 0 × model.norm post → pre"
    plus: Weights
    minus: Weights
    inner: str  # MAIN: the factor's name; INTERACTION: the effect that changes
    before: str  # "200", "model.norm post": where the minus part is taken
    after: str


@dataclass(frozen=True)
class SimpleEffects:
    """The simple effects behind a two-factor interaction (by label), and the main effects of
    its two factors."""

    interaction: str
    mains: tuple[str, str]
    effects: tuple[Contrast, ...]


@dataclass(frozen=True)
class Design:
    group: str
    factors: tuple[Factor, ...]
    cells: dict[Cell, str]  # cell -> setting
    baseline_cell: Cell | None  # the baseline's cell, where it is one
    declared: bool = False  # without a baseline cell: the references are the spec's first levels

    @property
    def reference_rule(self) -> str:
        """Where the reference levels come from, in words."""
        if self.baseline_cell:
            return "the baseline's level"
        return "the first level the spec declares" if self.declared else "the first level in the runs' order"

    @property
    def shape(self) -> str:
        return " × ".join(str(len(f.levels)) for f in self.factors)

    def contrasts(self) -> list[Contrast]:
        """Every main effect, then every interaction, lowest order first."""
        out = []
        for order in range(1, len(self.factors) + 1):
            for chosen in itertools.combinations(range(len(self.factors)), order):
                for levels in itertools.product(*(self.factors[f].levels[1:] for f in chosen)):
                    out.append(self._contrast(dict(zip(chosen, levels, strict=True))))
        return out

    def simple_effects(self) -> list[SimpleEffects]:
        """For each two-factor interaction: each of its two factors' effect (to the interaction's
        level) at the other's reference and at the other's level, averaged over any further
        factors: what a reader asks when the interaction is real."""
        out = []
        for i, j in itertools.combinations(range(len(self.factors)), 2):
            for li, lj in itertools.product(self.factors[i].levels[1:], self.factors[j].levels[1:]):
                effects = [
                    self._simple(f, level, g, at)
                    for (f, level), (g, other) in (((i, li), (j, lj)), ((j, lj), (i, li)))
                    for at in (self.factors[g].reference, other)
                ]
                mains = (self._contrast({i: li}).label, self._contrast({j: lj}).label)
                out.append(SimpleEffects(self._contrast({i: li, j: lj}).label, mains, tuple(effects)))
        return out

    def _simple(self, f: int, level: Level, g: int, at: Level) -> Contrast:
        """Factor ``f``'s effect (reference → ``level``) where factor ``g`` is at ``at``."""
        F, G = self.factors[f], self.factors[g]
        return Contrast(
            SIMPLE,
            f"{F.name} {F.label(F.reference)} → {F.label(level)} at {G.name} = {G.label(at)}",
            self._effect({}, {f: level, g: at}),
            self._effect({}, {f: F.reference, g: at}),
            F.name,
            F.label(F.reference),
            F.label(level),
        )

    def _contrast(self, chosen: dict[int, Level]) -> Contrast:
        first, *rest = chosen
        f = self.factors[first]
        change = f"{f.name} {f.label(f.reference)} → {f.label(chosen[first])}"
        if not rest:
            return Contrast(
                MAIN,
                change,
                self._effect({}, {first: chosen[first]}),
                self._effect({}, {first: f.reference}),
                f.name,
                f.label(f.reference),
                f.label(chosen[first]),
            )
        inner = " × ".join(
            f"{self.factors[g].name} {self.factors[g].label(self.factors[g].reference)} → "
            f"{self.factors[g].label(chosen[g])}"
            for g in rest
        )
        at = {g: chosen[g] for g in rest}
        return Contrast(
            INTERACTION,
            f"{inner} × {change}",
            self._effect(at, {first: chosen[first]}),
            self._effect(at, {first: f.reference}),
            inner,
            f"{f.name} {f.label(f.reference)}",
            f"{f.name} {f.label(chosen[first])}",
        )

    def _effect(self, chosen: dict[int, Level], fixed: dict[int, Level]) -> Weights:
        """The weights of the (interaction) effect of ``chosen`` factors at their levels against
        their references, within the cells at the ``fixed`` levels, averaged over the others."""
        weights: Weights = {}
        for at_level in itertools.product((False, True), repeat=len(chosen)):
            sign = (-1) ** (len(chosen) - sum(at_level))
            where = dict(fixed)
            for (g, level), on in zip(chosen.items(), at_level, strict=True):
                where[g] = level if on else self.factors[g].reference
            matching = [c for c in self.cells if all(c[g] == v for g, v in where.items())]
            for cell in matching:
                weights[cell] = weights.get(cell, 0.0) + sign / len(matching)
        return {c: w for c, w in weights.items() if not math.isclose(w, 0.0, abs_tol=1e-12)}


def shown(column: pd.Series) -> pd.Series:
    """Config values as the spec wrote them: a column of whole numbers with gaps (runs that never
    started) holds 4 as 4.0, and is shown as 4 again; a value a search sampled
    (0.0025951315088475813) to 4 significant digits (0.002595), as the search's own table and the
    baseline's line show it. The settings are told apart by these texts, so fewer digits could
    merge two sampled values into one level."""
    present = column.dropna()
    if pd.api.types.is_float_dtype(column) and len(present) and present.map(float.is_integer).all():
        return column.map(lambda v: str(int(v)) if pd.notna(v) else "nan")
    return column.map(lambda v: f"{v:.4g}" if isinstance(v, float) and len(str(v)) > 10 else str(v))


def _setting_values(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per setting (its index), the ``keys`` as the spec wrote them."""
    settings = rows.drop_duplicates("setting").set_index("setting")
    return pd.DataFrame({k: shown(settings[k]) for k in keys}, index=settings.index)


def _factor_keys(settings: pd.DataFrame, keys: list[str]) -> list[list[str]]:
    """The keys that vary over the settings (one row per setting), joined into factors: a key
    joins a factor whose first key determines it or is determined by it."""
    factors: list[list[str]] = []
    for key in (k for k in keys if settings[k].nunique() > 1):
        for factor in factors:
            lead = factor[0]
            if (
                settings.groupby(lead)[key].nunique().max() == 1
                or settings.groupby(key)[lead].nunique().max() == 1
            ):
                factor.append(key)
                break
        else:
            factors.append([key])
    return factors


def factors_of(rows: pd.DataFrame, keys: list[str]) -> list[list[str]]:
    """The factors (keys moving together) of ``keys`` over the settings of ``rows``."""
    return _factor_keys(_setting_values(rows, keys), keys)


def design(
    group: str,
    members: pd.DataFrame,
    keys: list[str],
    baseline: str = "baseline",
    declared: Mapping[str, Sequence[str]] | None = None,
) -> Design | None:
    """The crossed design of ``group`` (its own runs: ``members`` whose groups name it), or None
    where the group is not a full factorial of two or more factors. ``declared``: config key ->
    its values in the order the spec declares them (as the spec wrote them), for the reference
    level where the baseline is not a cell."""
    own = members[[group in gs for gs in members["groups"]]]
    if "model.arch" in own.columns:  # runs that never started logged no config
        own = own[own["model.arch"].notna()]
    if own.empty or not keys:
        return None
    table = _setting_values(own, keys)
    grouped = _factor_keys(table, keys)  # each factor varies, so it has two levels or more
    if len(grouped) < 2:
        return None
    levels_of = [list(dict.fromkeys(map(tuple, table[f].itertuples(index=False)))) for f in grouped]
    cells: dict[Cell, str] = {}
    for setting, row in table.iterrows():
        cells[tuple(tuple(row[k] for k in f) for f in grouped)] = setting
    if len(cells) != len(table) or len(cells) != math.prod(len(levels) for levels in levels_of):
        return None
    baseline_cell = next((c for c, s in cells.items() if s == baseline), None)
    factors = []
    for i, (f, levels) in enumerate(zip(grouped, levels_of, strict=True)):
        reference = baseline_cell[i] if baseline_cell else _first_declared(f, levels, declared or {})
        ordered = [reference, *[lv for lv in _natural(levels) if lv != reference]]
        factors.append(Factor(tuple(f), tuple(ordered)))
    return Design(group, tuple(factors), cells, baseline_cell, declared=bool(declared))


def _first_declared(keys: list[str], levels: list[Level], declared: Mapping[str, Sequence[str]]) -> Level:
    """The level the spec declares first (by the first of ``keys`` it declares), else the first of
    ``levels`` (the runs' order)."""
    for position, key in enumerate(keys):
        order = list(declared.get(key, ()))
        known = [level for level in levels if level[position] in order]
        if known:
            return min(known, key=lambda level: order.index(level[position]))
    return levels[0]


def _natural(levels: list[Level]) -> list[Level]:
    """Levels in numeric order where every value is a number, else as they came."""
    try:
        return sorted(levels, key=lambda level: tuple(float(v) for v in level))
    except ValueError:
        return levels


def display_levels(factor: Factor) -> list[Level]:
    """A factor's levels for tables and plots: numeric order where numbers, else reference first."""
    return _natural(list(factor.levels))


def cell_estimates(d: Design, estimate) -> pd.DataFrame:
    """One row per cell: its factors' level labels (a column per factor name), ``setting``,
    ``baseline`` (is it the baseline's cell) and what ``estimate(setting)`` returns, a mapping
    such as ``{"mean": …, "low": …, "high": …}`` (None where the setting has no finished run)."""
    rows = []
    orders = [display_levels(f) for f in d.factors]
    for cell in itertools.product(*orders):
        setting = d.cells[cell]
        found = estimate(setting) or {}
        rows.append(
            {
                **{f.name: f.label(level) for f, level in zip(d.factors, cell, strict=True)},
                "setting": setting,
                "baseline": cell == d.baseline_cell,
                **found,
            }
        )
    return pd.DataFrame(rows)
