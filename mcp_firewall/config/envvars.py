"""`${VAR}` and `${VAR:-default}` in the firewall file's string values (never in scope files).

- `${NAME}`: the variable's value; unset is an error (`undefined_variable`).
- `${NAME:-default}`: the default when the variable is unset or empty (as in POSIX shells and Compose).
- `$${`: a literal `${`. Any other `$` is kept as written.
NAME is letters, digits and `_`, not starting with a digit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Expansion", "VariableProblem", "expand_tree", "expand_variables"]

_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\}?)")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


@dataclass(frozen=True)
class VariableProblem:
    """Why a string could not be expanded: code `undefined_variable` or `bad_variable`."""

    code: str
    message: str


def expand_variables(text: str, environ: Mapping[str, str]) -> tuple[str, list[VariableProblem]]:
    """Expand `text`; problems are returned (the text is then expanded as far as possible)."""
    problems: list[VariableProblem] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        if not match.group("close"):
            problems.append(
                VariableProblem(
                    "bad_variable", "unterminated '${': close it with '}', or write '$${' for a literal '${'"
                )
            )
            return match.group(0)
        return _substitute(match.group("body"), environ, problems) or ""

    return _TOKEN.sub(replace, text), problems


def _substitute(body: str, environ: Mapping[str, str], problems: list[VariableProblem]) -> str | None:
    parsed = _BODY.fullmatch(body)
    if parsed is None:
        problems.append(
            VariableProblem(
                "bad_variable",
                f"'${{{body}}}' is not a variable reference: write ${{NAME}} or ${{NAME:-default}} "
                f"(NAME: letters, digits and '_'), or '$${{' for a literal '${{'",
            )
        )
        return "${" + body + "}"
    name, default = parsed.group("name"), parsed.group("default")
    value = environ.get(name)
    if default is not None:
        return value if value else default
    if value is None:
        problems.append(
            VariableProblem(
                "undefined_variable",
                f"environment variable {name} is not set (used as ${{{name}}}); set it, "
                f"or give a default: ${{{name}:-value}}",
            )
        )
    return value


@dataclass
class Expansion:
    """The firewall file's data after expansion, the problems found (by data path), and what was written
    before expansion at each path that contained a `$` (so messages never echo an expanded secret)."""

    data: Any
    problems: list[tuple[tuple[Any, ...], VariableProblem]]
    written: dict[tuple[Any, ...], str]


def expand_tree(data: Any, environ: Mapping[str, str]) -> Expansion:
    """Expand every string value (not keys) of a parsed YAML document."""
    result = Expansion(None, [], {})
    result.data = _expand(data, (), environ, result)
    return result


def _expand(value: Any, path: tuple[Any, ...], environ: Mapping[str, str], out: Expansion) -> Any:
    if isinstance(value, dict):
        return {key: _expand(item, (*path, key), environ, out) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, (*path, index), environ, out) for index, item in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    expanded, problems = expand_variables(value, environ)
    out.written[path] = value
    out.problems.extend((path, problem) for problem in problems)
    return expanded
