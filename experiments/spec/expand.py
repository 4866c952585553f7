"""Declarative ablation specs: a baseline trainer config and the ablations to run against it.

A spec (YAML) names a baseline and ablation *groups*; each group expands to points, each point
runs once per seed::

    name: heads                       # MLflow experiment "ablab/heads"; default: the file name
    baseline:
      config: ../configs/baseline.yaml   # a path relative to the spec, or an inline mapping
      overrides: {train.epochs: 20}
    ablations:
      no_warmup: {schedule.warmup_steps: 0}        # shorthand: one arm named like the group
      heads:
        grid: {model.heads: [1, 4, 8]}             # axes, crossed with each other
      depth:
        zip: {model.layers: [1, 2, 4, 6], optim.lr: [1e-3, 1e-3, 7e-4, 5e-4]}  # move together
      schedules:
        arms: {noam: {schedule.name: noam}, cosine: {schedule.name: warmup_cosine}}
        overrides: {schedule.warmup_steps: 2000}   # applied to every point of the group
        question: Which schedule trains best?      # optional; default: from the keys varied
        expect: Noam and cosine close (Vaswani et al. 2017)   # optional, shown by the verdicts
      label_smoothing:
        arms: {none: {loss.label_smoothing: 0.0}}
        primary_metric: ece                        # optional; default: the spec's
    primary_metric: bleu               # what the report's verdicts are decided on (default bleu)
    seeds: [1, 2, 3]
    resources: {cpus: 1, gpus: 0.5}
    max_concurrent: 4
    budget: {epochs: 10}               # or steps / minutes
    retries: 2
    search:                            # optional: tune some keys per point with Optuna
      space: {optim.lr: {loguniform: [1e-4, 3e-3]}}
      trials: 8
      metric: val_bleu
      mode: max
      scheduler: {asha: {grace_period: 1, reduction_factor: 2}}

Within a group, arms, grid axes and the zip are crossed (a group crossing two or more of them is
reported as a factorial design); groups are not crossed with each other. A point whose
resolved config equals another's (the baseline's, typically) is one trial, so the baseline runs
once per seed. Every resolved config is validated by the trainer's own config validation;
errors name the spec file, the YAML path and the fix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablab.experiments.spec.schema import (
    GROUP_KEYS,
    MAX_TRIALS,
    Ablation,
    Domain,
    Overrides,
    Resources,
    Spec,
    SpecError,
    value_label,
)
from ablab.trainer.config import validation_errors
from ablab.trainer.config.files import apply_overrides, read_yaml
from ablab.trainer.config.schema import Config, config_hash, from_dict
from ablab.trainer.errors import ConfigError
from ablab.trainer.tracking import record


@dataclass(frozen=True)
class Trial:
    """One run of the shared trainer: a resolved config and where it came from."""

    name: str  # stable, e.g. "heads=8,seed=1"
    hash: str  # content hash of the resolved trainer config
    config: Config
    groups: tuple[str, ...]  # the ablation groups (or "baseline") this config is a point of
    arm: str | None
    axes: dict[str, Any]  # grid and zip values of the point
    seed: int
    resources: Resources
    overrides: Overrides = field(default_factory=dict)  # against the baseline config

    def tags(self) -> dict[str, str]:
        tags = {
            record.TRIAL: self.name,
            record.TRIAL_HASH: self.hash,
            record.GROUPS: ",".join(self.groups),
            record.SEED: str(self.seed),
        }
        if self.arm:
            tags[record.ARM] = self.arm
        tags.update({f"{record.AXIS}{k}": json.dumps(v) for k, v in self.axes.items()})
        return tags


@dataclass(frozen=True)
class Plan:
    spec: Spec
    path: Path
    trials: list[Trial]
    hash: str

    @property
    def experiment(self) -> str:
        return f"ablab/{self.spec.name}"

    def search_space(self, trial: Trial) -> dict[str, Domain]:
        return search_space(self.spec, trial)[1]


def search_space(spec: Spec, trial: Trial) -> tuple[str, dict[str, Domain]]:
    """The space ``trial``'s point searches, and where the spec declares it: its group's own
    (``ablations.<group>.search``), else the spec's (``search.space``)."""
    for group in trial.groups:
        ablation = spec.ablations.get(group)
        if ablation is not None and ablation.search:
            return f"ablations.{group}.search", ablation.search
    assert spec.search is not None, "only a spec with a search has search spaces"
    return "search.space", spec.search.space


def _normalize_groups(raw: dict) -> dict:
    """Turn shorthand arms (``no_warmup: {schedule.warmup_steps: 0}``) into ``{arms: {...}}``."""
    groups = raw.get("ablations")
    if not isinstance(groups, dict):
        return raw
    out = {}
    for name, body in groups.items():
        if isinstance(body, dict) and body and all(isinstance(k, str) and "." in k for k in body):
            out[name] = {"arms": {name: body}}
        elif isinstance(body, dict):
            unknown = [k for k in body if k not in GROUP_KEYS]
            if unknown:
                raise SpecError(
                    f"ablations.{name}: unknown key(s) {unknown}; an ablation is either a mapping of "
                    f"dotted config keys (one arm) or has keys {', '.join(GROUP_KEYS)}."
                )
            out[name] = body
        else:
            out[name] = body
    return {**raw, "ablations": out}


def read_spec(path: str | Path) -> tuple[Spec, Path]:
    """Parse and validate the structure of a spec file (not yet the trainer configs)."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    if raw is None or raw == {}:
        raise SpecError(
            f"{path}: the spec is empty; a spec needs at least 'baseline' (a trainer config) and "
            "usually 'ablations' and 'seeds'; see experiments/specs/smoke.yaml."
        )
    if not isinstance(raw, dict):
        raise SpecError(
            f"{path}: a spec must be a mapping with at least 'baseline'; got {type(raw).__name__}."
        )
    raw = {"name": path.stem, **raw}
    try:
        raw = _normalize_groups(raw)
        spec = Spec.model_validate(raw)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid spec: {validation_errors.describe(exc.errors())}.") from None
    return spec, path


def _baseline_raw(spec: Spec, path: Path) -> dict[str, Any]:
    if isinstance(spec.baseline.config, dict):
        return spec.baseline.config
    config_path = (path.parent / spec.baseline.config).resolve()
    try:
        raw = read_yaml(config_path)
    except ConfigError as exc:
        raise SpecError(f"{path}: baseline.config: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: baseline.config {config_path} is not a mapping of config sections.")
    return raw


def _label(key: str, keys: list[str]) -> str:
    """Short axis label: the last part of a dotted key, unless that is ambiguous in ``keys``."""
    short = key.rsplit(".", 1)[-1]
    return short if sum(k.rsplit(".", 1)[-1] == short for k in keys) == 1 else key


def _points(group: Ablation) -> list[tuple[str | None, Overrides, dict[str, Any], str]]:
    """(arm, overrides, axes, YAML path of the source) for every point of a group."""
    arms = list(group.arms.items()) or [(None, {})]
    grid_keys = list(group.grid)
    grid = [dict(zip(grid_keys, combo, strict=True)) for combo in itertools.product(*group.grid.values())]
    n_zip = len(next(iter(group.zip.values()))) if group.zip else 0
    zipped = [{k: v[i] for k, v in group.zip.items()} for i in range(n_zip)] or [{}]
    out = []
    for (arm, arm_overrides), grid_point, zip_point in itertools.product(arms, grid, zipped):
        axes = {**grid_point, **zip_point}
        source = f"arms.{arm}" if arm else ("grid" if grid_point else ("zip" if zip_point else "overrides"))
        out.append((arm, {**group.overrides, **arm_overrides, **axes}, axes, source))
    return out


def expand(spec: Spec, path: Path) -> Plan:
    """All trials of the spec, validated, deduplicated by config hash, baseline first."""
    base_raw = _baseline_raw(spec, path)
    common = dict(spec.baseline.overrides)
    if spec.budget:
        common.update(spec.budget.overrides())
    definitions = [(record.BASELINE, None, {}, {}, record.BASELINE, spec.resources)]
    for name, group in spec.ablations.items():
        for arm, overrides, axes, source in _points(group):
            resources = group.resources or spec.resources
            definitions.append((name, arm, overrides, axes, f"ablations.{name}.{source}", resources))
    if len(definitions) * len(spec.initial_seeds) > MAX_TRIALS:
        raise SpecError(
            f"{path}: the spec expands to {len(definitions) * len(spec.initial_seeds):,} trials "
            f"({len(definitions):,} points x {len(spec.initial_seeds):,} seeds); a spec may have at most "
            f"{MAX_TRIALS:,}: shorten its axes or seeds, or split it into several specs."
        )
    by_hash: dict[str, Trial] = {}
    for seed in spec.initial_seeds:
        for group_name, arm, overrides, axes, source, resources in definitions:
            config = _resolve(base_raw, {**common, **overrides}, seed, resources, path, source)
            key = config_hash(config)
            if key in by_hash:
                existing = by_hash[key]
                if group_name not in existing.groups:
                    by_hash[key] = replace(existing, groups=(*existing.groups, group_name))
                continue
            labels = [arm] if arm else []
            labels += [f"{_label(k, list(axes))}={value_label(v)}" for k, v in axes.items()]
            name = ",".join(labels or [record.BASELINE]) + f",seed={seed}"
            by_hash[key] = Trial(
                name=name,
                hash=key,
                config=config,
                groups=(group_name,),
                arm=arm,
                axes=axes,
                seed=seed,
                resources=resources,
                overrides={**overrides, "train.seed": seed},
            )
    trials = list(by_hash.values())
    names = [t.name for t in trials]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(
            f"{path}: different trials share the name(s) {duplicates}; "
            "rename the arms or groups that produce them."
        )
    if spec.search:  # every searched key is a config key, and its domain's edges give valid configs
        for trial in {record.setting_of(t.name): t for t in trials}.values():
            where, space = search_space(spec, trial)
            for key, domain in space.items():
                for value in domain.extremes():
                    edge = {**common, **trial.overrides, key: value}
                    source = f"{where}[{key}] at {record.setting_of(trial.name)}"
                    _resolve(base_raw, edge, trial.seed, trial.resources, path, source)
    digest = hashlib.sha256(json.dumps([spec.name, *sorted(t.hash for t in trials)]).encode()).hexdigest()[
        :16
    ]
    return Plan(spec, path, trials, digest)


def _resolve(
    base_raw: dict, overrides: Overrides, seed: int, resources: Resources, path: Path, source: str
) -> Config:
    overrides = {**overrides, "train.seed": seed}
    try:
        raw = apply_overrides(base_raw, overrides)
        if raw.get("train", {}).get("threads") is None:
            raw.setdefault("train", {})["threads"] = max(1, int(resources.cpus))
        config = from_dict(raw, source=f"{path}: {source}")
        _refuse_escaping_paths(config)
        return config
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(str(path)):
            message = f"{path}: {source}: {message}"
        raise SpecError(message) from None


def _refuse_escaping_paths(config: Config) -> None:
    """A spec may not point writes outside the folders ablab chooses: the caches it writes
    (``data.cache_dir``) must be relative, without '..' (relative to the working directory)."""
    for key, value in (("data.cache_dir", config.data.cache_dir),):
        if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
            raise ConfigError(
                f"{key} is {value!r}: a spec may only name a relative folder without '..' for what "
                "ablab writes; leave it out to use the user cache ($XDG_CACHE_HOME/ablab or ~/.cache/ablab)."
            )


def load_plan(path: str | Path) -> Plan:
    spec, path = read_spec(path)
    return expand(spec, path)
