"""The base of every config section, and the mark of an option added after results were recorded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NEUTRAL = {"neutral": True}
"""Marks a field added after results were recorded whose default trains exactly as before the
field existed (``Field(default=..., json_schema_extra=NEUTRAL)``). At that default it is left out
of :func:`ablab.trainer.config.schema.config_hash`: finished trials keep their identity (a sweep's
``--resume`` still knows them) when ablab gains an option."""


class Section(BaseModel):
    """A frozen, strict section of the config: unknown keys are errors, docstrings document."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)
