"""The schema of a spec file (pydantic, strict): what each key of the YAML may hold, checked
before anything is expanded. The format is described in :mod:`ablab.experiments.spec.expand`."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from ablab.trainer.config.schema import limited
from ablab.trainer.errors import UserError
from ablab.trainer.tracking import record

if TYPE_CHECKING:
    from ablab.analysis.sequential import Design

MAX_TRIALS = 1000
"""More trials than this in one spec is almost surely a mistake (a pasted list, a typo'd range)."""

GROUP_KEYS = (
    "arms", "grid", "zip", "overrides", "resources", "question", "expect", "primary_metric", "search"
)  # fmt: skip
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(UserError):
    """A spec file that cannot be expanded into valid trials."""


def _slug(kind: str, name: str, reserved: tuple[str, ...] = ()) -> str:
    """``name`` if it can name an MLflow experiment, a trial or a tag; else a ValueError."""
    if not NAME_PATTERN.match(name) or name in reserved:
        others = f", and not {', '.join(map(repr, reserved))}" if reserved else ""
        raise ValueError(f"{kind} {name!r} must be letters, digits, '_', '-' or '.'{others}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Overrides = dict[str, Any]
PrimaryMetric = Literal["bleu", "bleu_lc", "chrf", "ece", "test_nll"]
"""The test metrics a report compares (ablab.analysis.metrics.METRICS)."""


class Resources(_Strict):
    cpus: float = Field(default=1.0, gt=0.0, le=512.0)
    """CPUs per trial (also the torch threads of the trial unless train.threads is set)."""
    gpus: float = Field(default=0.0, ge=0.0, le=16.0)
    """GPUs per trial; a fraction shares a GPU between trials."""


class Budget(_Strict):
    epochs: int | None = Field(default=None, ge=1)
    steps: int | None = Field(default=None, ge=1)
    minutes: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        """The trainer's rule (:func:`ablab.trainer.config.schema.limited`), in the budget's words."""
        if not limited(self.epochs, self.steps, self.minutes):
            raise ValueError("budget needs at least one of epochs, steps, minutes")
        return self

    def overrides(self) -> Overrides:
        return {"train.epochs": self.epochs, "train.max_steps": self.steps, "train.max_minutes": self.minutes}


class Asha(_Strict):
    grace_period: int = Field(default=1, ge=1)
    """Epochs every trial runs before it can be stopped."""
    reduction_factor: float = Field(default=2.0, gt=1.0)
    """Keep the best 1/reduction_factor of trials at each rung."""


class Scheduler(_Strict):
    asha: Asha


class Domain(_Strict):
    loguniform: tuple[float, float] | None = Field(default=None, strict=False)
    uniform: tuple[float, float] | None = Field(default=None, strict=False)
    randint: tuple[int, int] | None = Field(default=None, strict=False)
    choice: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Domain:
        given = [k for k in ("loguniform", "uniform", "randint", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a search domain is exactly one of loguniform, uniform, randint, choice")
        kind = given[0]
        if kind != "choice":
            low, high = getattr(self, kind)
            if not low < high:
                raise ValueError(f"{kind} needs low < high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform needs a positive low bound, got {low}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("loguniform", "uniform", "randint", "choice") if getattr(self, k) is not None)

    def extremes(self) -> list[Any]:
        """Values at the edges of the domain (for validating them before anything runs)."""
        value = getattr(self, self.kind)
        if self.kind == "randint":
            return [value[0], value[1] - 1]
        return list(value)


class Search(_Strict):
    space: dict[str, Domain] = Field(min_length=1)
    trials: int = Field(ge=1, le=10_000)
    """Optuna trials per point (arm or grid point), each with the first seed; then every other
    seed of ``seeds`` runs once at the values the search found best (the confirmation runs, which
    the report compares: the search runs only chose the values)."""
    metric: str = "val_bleu"
    mode: Literal["max", "min"] = "max"
    scheduler: Scheduler | None = None
    seed: int = 0
    """Seed of the Optuna sampler: the same spec samples the same values."""


class SpecFactor(NamedTuple):
    keys: list[str]  # the config keys that move together
    name: str
    levels: list[str]  # as the spec wrote them


class Ablation(_Strict):
    overrides: Overrides = {}
    arms: dict[str, Overrides] = {}
    grid: dict[str, list[Any]] = {}
    zip: dict[str, list[Any]] = {}
    resources: Resources | None = None
    question: str | None = None
    """What the group asks, in the report and MLflow; default: derived from the keys it varies."""
    expect: str | None = None
    """What to expect (e.g. the published direction), shown beside the group's verdicts."""
    primary_metric: PrimaryMetric | None = None
    """The metric this group's verdicts and finding lead with (default: the spec's)."""
    search: dict[str, Domain] | None = Field(default=None, min_length=1)
    """With the spec's ``search``: the space this group's points search instead of its
    ``search.space`` (each optimizer at its own learning-rate range, say)."""

    def factors(self) -> list[SpecFactor]:
        """What the group varies, factor by factor: its arms (one factor: the keys they change,
        the arms' names as levels), each grid axis, the zip (one factor)."""
        arm_keys = list(dict.fromkeys(k for overrides in self.arms.values() for k in overrides))
        out = [SpecFactor(arm_keys, "arm", list(self.arms))] if arm_keys else []
        out += [SpecFactor([k], k, [value_label(v) for v in values]) for k, values in self.grid.items()]
        if self.zip:
            rows = zip(*self.zip.values(), strict=True)
            labels = [", ".join(map(value_label, row)) for row in rows]
            out.append(SpecFactor(list(self.zip), " + ".join(self.zip), labels))
        return out

    def declared_levels(self) -> dict[str, list[str]]:
        """Each key the group varies -> its values in the order the spec declares them (arms in
        their order, then grid and zip values), as the spec wrote them: a crossed group's
        reference levels where the baseline is not one of its cells."""
        out: dict[str, list[str]] = {}
        for overrides in self.arms.values():
            for key, value in overrides.items():
                out.setdefault(key, []).append(value_label(value))
        for key, values in (*self.grid.items(), *self.zip.items()):
            out.setdefault(key, []).extend(value_label(v) for v in values)
        return {key: list(dict.fromkeys(values)) for key, values in out.items()}

    @field_validator("grid", "zip")
    @classmethod
    def _non_empty_axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in axes.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"axis {key!r} repeats a value: {values}")
        return axes

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, Overrides]) -> dict[str, Overrides]:
        for name in arms:
            _slug("arm name", name)
        return arms

    @model_validator(mode="after")
    def _consistent(self) -> Ablation:
        lengths = {key: len(values) for key, values in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"zip axes must have equal lengths, got {lengths}")
        if not (self.arms or self.grid or self.zip or self.overrides):
            raise ValueError("an ablation needs arms, grid, zip or overrides")
        shared = set(self.grid) & set(self.zip)
        if shared:
            raise ValueError(f"{sorted(shared)} is both a grid and a zip axis")
        return self


class SequentialSeeds(_Strict):
    """Seeds spent where a decision is pending (:mod:`ablab.analysis.sequential`): every setting
    starts with seeds 1 to ``initial``; after each look a comparison still undecided and not futile
    gets ``step`` more (and the baseline as many as its most demanding arm), up to ``max``."""

    initial: int = Field(ge=2, le=100)
    max: int = Field(ge=2, le=100)
    step: int = Field(default=2, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> SequentialSeeds:
        if self.max < self.initial:
            raise ValueError(f"seeds.max ({self.max}) is below seeds.initial ({self.initial})")
        return self

    @property
    def design(self) -> Design:
        from ablab.analysis.sequential import Design  # numpy and scipy: not before a spec is read

        return Design(self.initial, self.max, self.step)


def _seeds_form(value: Any) -> str:
    """Which form of ``seeds`` a value is written in, so that an error speaks of that form only."""
    return "SequentialSeeds" if isinstance(value, dict | SequentialSeeds) else "list[int]"


Seeds = Annotated[
    Annotated[
        Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=100)], Tag("list[int]")
    ]
    | Annotated[SequentialSeeds, Tag("SequentialSeeds")],
    Discriminator(_seeds_form),
]


class Baseline(_Strict):
    config: str | dict[str, Any]
    """Trainer config: a YAML path relative to the spec file, or an inline mapping."""
    overrides: Overrides = {}


class Spec(_Strict):
    name: str
    description: str = ""
    baseline: Baseline
    ablations: dict[str, Ablation] = {}
    seeds: Seeds = [1]
    """The seeds every setting runs with; or ``{initial, max, step}``: a sequential design that adds
    seeds only where a comparison is still undecided."""
    max_runs: int | None = Field(default=None, ge=1)
    """A sequential design's cap on its runs (all seeds of every setting): no look launches past it."""
    resources: Resources = Resources()
    max_concurrent: int | None = Field(default=None, ge=1)
    budget: Budget | None = None
    retries: int = Field(default=2, ge=0, le=20)
    """Restarts of a failing trial (from its last checkpoint) before it is recorded as failed."""
    run_figures: bool = True
    """Draw each trial's figures (training curves, reliability diagram, attention) onto its MLflow
    run page when it ends, a few CPU-seconds a trial; false for sweeps of many tiny trials. No
    trial's identity or result depends on it."""
    metric: str = "val_bleu"
    """The validation metric progress and searches rank trials by."""
    primary_metric: PrimaryMetric = "bleu"
    """The test metric the report's verdicts are decided on: Holm's primary family holds every
    comparison on it; the other metrics form a secondary family (see ablab.analysis.verdicts)."""
    mode: Literal["max", "min"] = "max"
    search: Search | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _slug("name", name)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | SequentialSeeds) -> list[int] | SequentialSeeds:
        if isinstance(seeds, list) and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @property
    def initial_seeds(self) -> list[int]:
        """The seeds every setting starts with: all of them, or a sequential design's first."""
        return self.seeds if isinstance(self.seeds, list) else list(range(1, self.seeds.initial + 1))

    @property
    def design(self) -> Design | None:
        """The sequential design over seeds (with the spec's ``max_runs``), if the spec has one."""
        return None if isinstance(self.seeds, list) else replace(self.seeds.design, max_runs=self.max_runs)

    @field_validator("ablations")
    @classmethod
    def _group_names(cls, groups: dict[str, Ablation]) -> dict[str, Ablation]:
        for name in groups:
            _slug("ablation name", name, reserved=(record.BASELINE,))
        return groups

    @model_validator(mode="after")
    def _sequential_needs_no_search(self) -> Spec:
        if self.design is not None and self.search is not None:
            raise ValueError(
                "seeds: {initial, max, step} with a search: a searched point's seeds are its "
                "confirmation runs; give seeds as a list"
            )
        if self.max_runs is not None and self.design is None:
            raise ValueError("max_runs caps a sequential design; give seeds as {initial, max, step}")
        return self

    @model_validator(mode="after")
    def _group_search_needs_a_search(self) -> Spec:
        spaces = [name for name, group in self.ablations.items() if group.search]
        if spaces and self.search is None:
            raise ValueError(
                f"ablations {spaces} set a search space but the spec has no search; add "
                "search: {space: ..., trials: N} (its space is the baseline's)"
            )
        return self


def value_label(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)
