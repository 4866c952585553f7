"""Pydantic's validation errors as one plain sentence, for configs and specs alike.

Each error becomes a clause ``where: what (got value)``: the location in the file's own terms
(``model.heads``; a dotted key inside a mapping in brackets, ``grid[model.heads][0]``; pydantic's
union branches such as ``str`` or ``dict[str,any]`` left out), pydantic's wording made plain
("expected a mapping", "unknown key"), the offending value where it is a single value. Clauses
of one location are joined with "or" (the alternatives of a union); an unknown key may be
described by the caller (``unknown``, e.g. with the closest valid key).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ablab.trainer.errors import join_problems, short_repr

UNION_BRANCHES = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|tuple\[.*\]|[A-Z]\w*)$")
PLAIN_WORDS = [
    (re.compile(r"Input should be a valid dictionary( or instance of \w+)?"), "expected a mapping"),
    (re.compile(r"Input should be a valid list"), "expected a list"),
    (re.compile(r"Input should be a valid string"), "expected a string"),
    (re.compile(r"Input should be a valid integer"), "expected an integer"),
    (re.compile(r"Input should be a valid number"), "expected a number"),
    (re.compile(r"Extra inputs are not permitted"), "unknown key"),
]


def location(loc: tuple) -> str:
    """``('ablations', 'g', 'grid', 'model.heads', 0)`` -> ``ablations.g.grid[model.heads][0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int) or "." in str(part):
            out += f"[{part}]"
        elif UNION_BRANCHES.match(str(part)) and out:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(errors: list[dict], unknown: Callable[[dict], str] | None = None, values: bool = False) -> str:
    """The errors as one sentence; ``unknown`` words an unknown key's error (``extra_forbidden``),
    ``values`` adds the offending value to each clause."""
    by_location: dict[str, list[str]] = {}
    for err in errors:
        where = location(err["loc"])
        if err["type"] == "extra_forbidden" and unknown is not None:
            by_location.setdefault("", []).append(unknown(err))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        for pattern, plain in PLAIN_WORDS:
            msg = pattern.sub(plain, msg)
        if values and where and not isinstance(err.get("input"), dict):
            msg += f" (got {short_repr(err['input'])})"
        messages = by_location.setdefault(where, [])
        if msg not in messages:
            messages.append(msg)
    clauses = []
    for where, msgs in by_location.items():
        clauses += [f"{where}: {' or '.join(msgs)}"] if where else msgs
    return join_problems(clauses)
