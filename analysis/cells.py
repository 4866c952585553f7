"""What a cell of a report's table holds, known where the value is made, never guessed from its
text: a :class:`Number` (a value, ``mean ± sd``, an interval, a count: right-aligned, never broken
across lines) or a :class:`Badge` (a verdict, coloured by its kind); anything else is words.

Each is a ``str``, so a row still reads, compares and is written to Markdown or CSV as its text;
the HTML renderer reads the kind from the type.
"""

from __future__ import annotations

MISSING = "-"
"""A cell without a value."""


class Number(str):
    """A formatted number: ``27.94``, ``27.94 ± 0.33``, ``+0.85 [−3.10, +4.80]``, ``2/3``, ``6.00 M``."""

    __slots__ = ()


class Badge(str):
    """A verdict, shown as a coloured badge; :attr:`kind` (``differs``, ``inconclusive``,
    ``confounded``, ``one-seed``, ``none``) picks the colour."""

    def __new__(cls, text: str, kind: str) -> Badge:
        badge = super().__new__(cls, text)
        badge.kind = kind
        return badge

    def __reduce__(self):
        return Badge, (str(self), self.kind)


def kind(value: object) -> str:
    """A cell's kind for the renderer: ``number``, ``badge`` or ``text``."""
    if isinstance(value, Number):
        return "number"
    if isinstance(value, Badge):
        return "badge"
    return "text"
