"""User-facing errors: bad input that the user can fix.

Everything raised as a :class:`UserError` is printed as one paragraph by the CLI and ends the
process with exit code 2, before anything is written (no MLflow run, no checkpoint).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix; the message names the field or file and the fix."""

    exit_code = 2


class ConfigError(UserError):
    """A trainer config (file, key or value) is invalid."""


class DataError(UserError):
    """The Multi30k data cannot be found, downloaded or read."""
