"""User-facing errors: bad input that the user can fix.

Everything raised as a :class:`UserError` is printed as one paragraph by the CLI and ends the
process with exit code 2, before anything is written (no MLflow run, no checkpoint).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix; the message names the field or file and the fix."""

    exit_code = 2


class Unavailable(Exception):
    """Not bad input, but something a run needs is not there: the MLflow tracking store does
    not answer, the nodes run out of memory. Exit code 1; the message says what was kept and how
    to continue."""

    exit_code = 1


class ConfigError(UserError):
    """A trainer config (file, key or value) is invalid."""


class DataError(UserError):
    """A corpus (Multi30k or the user's files) cannot be found, downloaded or read."""


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a huge value in bad input stays readable."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 15]}... ({len(text):,} chars)"


def join_problems(problems: list[str], limit: int = 8) -> str:
    """The first ``limit`` problems joined by '; ', then how many more there are."""
    shown = "; ".join(problems[:limit])
    return shown if len(problems) <= limit else f"{shown}; and {len(problems) - limit:,} more"
