"""Small pieces the reviewer's commands (`explain`, `test`, `diff`, `lint`) share: aligned columns,
colour only on a terminal, and "did you mean" for mistyped names."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

__all__ = ["Paint", "closest", "columns", "compact_json"]

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


class Paint:
    """ANSI colour when writing to a terminal (and `NO_COLOR` is unset); plain text otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stdout
        self.enabled = stream.isatty() and "NO_COLOR" not in os.environ

    def __call__(self, text: str, colour: str) -> str:
        return f"\x1b[{_CODES[colour]}m{text}\x1b[0m" if self.enabled and text else text


def columns(rows: Iterable[Sequence[str]], indent: str = "", gap: str = "  ") -> list[str]:
    """Rows as lines with every column but the last padded to the widest cell (trailing spaces dropped).

    Widths ignore ANSI colour codes, so painted cells line up with plain ones.
    """
    table = [list(row) for row in rows]
    if not table:
        return []
    widths = [0] * max(len(row) for row in table)
    for row in table:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths[index], _visible_length(cell))
    lines = []
    for row in table:
        cells = [cell + " " * (widths[i] - _visible_length(cell)) for i, cell in enumerate(row[:-1])]
        lines.append((indent + gap.join([*cells, *row[-1:]])).rstrip())
    return lines


def _visible_length(text: str) -> int:
    length, escaped = 0, False
    for char in text:
        if char == "\x1b":
            escaped = True
        elif escaped:
            escaped = char != "m"
        else:
            length += 1
    return length


def closest(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean X?)` for the most similar candidate, or an empty string."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def compact_json(value: Any) -> str:
    """JSON on one line, as a reviewer would type it (`{"path": "/srv/docs"}`)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
