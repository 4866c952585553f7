"""Trainer configs from files and overrides: YAML read safely (errors name the file and the
position), ``--set KEY=VALUE`` parsed, dotted-key overrides applied to a nested mapping, and a
config file loaded and validated in one call (:func:`load`)."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from ablab.trainer.config.schema import RETIRED, SECTIONS, Config, from_dict, valid_keys
from ablab.trainer.errors import ConfigError, short_repr


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader; errors name the file and the position."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; check the path.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}).") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply to read; flatten the file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}.") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is parsed as YAML (``8`` -> int, ``[a, b]`` -> list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set model.heads=8.")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"--set {short_repr(text)}: the value is not valid YAML.") from None
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested mapping ``raw`` with dotted-key ``overrides`` set.

    Keys are checked against the schema so that a typo is reported as the key it is
    (``model.head``) rather than as a confusing nested value.
    """
    out = copy.deepcopy(raw) if raw else {}
    known = {*valid_keys(), *RETIRED}  # a retired key is read as the key that holds it now
    for key, value in overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown key {key!r} in an override{hint}; valid keys: {', '.join(valid_keys())}."
            )
        section, name = key.split(".")
        if not isinstance(out.get(section, {}), dict):
            raise ConfigError(f"section {section!r} must be a mapping to override {key!r}.")
        out.setdefault(section, {})[name] = value
    return out


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate the YAML config at ``path`` with dotted-key ``overrides`` applied."""
    raw = read_yaml(path)
    if raw is None or raw == {}:  # an empty file would silently train the full-size defaults
        raise ConfigError(
            f"{path}: the config is empty; name the sections to set ({', '.join(SECTIONS)}), e.g. "
            "start from experiments/configs/baseline.yaml, or write `train: {}` to train the "
            "defaults on purpose."
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a trainer config must be a mapping of sections "
            f"({', '.join(SECTIONS)}), got {type(raw).__name__}."
        )
    return from_dict(apply_overrides(raw, overrides or {}), source=str(path))
