"""Argument paths (which part of a tool call's `arguments` a constraint is about) and argument values.

Grammar (a reviewer writes these as the keys of `args:`)::

    path   := ident ( '.' ident | '[*]' )*
    ident  := [A-Za-z0-9_-]+

Examples: ``path``, ``options.mode``, ``paths[*]``, ``edits[*].path``, ``matrix[*][*]``.

Semantics, chosen to fail closed:

* `values(arguments)` yields one `Slot` per value the path selects. A missing key gives an *absent*
  slot (and so does JSON ``null`` where an object or array is expected on the way: "no options");
  ``[*]`` gives one slot per array item and an empty array gives none.
* Where an object or array is expected but something else is found (``"paths": "/etc"`` for
  ``paths[*]``), the slot carries a `problem`; a constraint turns that into a failure, never a crash.
* `declared_in(input_schema)` says whether the tool declares the path in `properties` at every level
  (``[*]`` steps into ``items``/``prefixItems``); local ``$ref`` and ``anyOf``/``oneOf``/``allOf``
  (and ``if``/``then``/``else``) branches are followed, and any branch declaring it is enough.

Values are compared with JSON equality (`json_key`: ``true`` is not ``1``, ``1`` is not ``"1"``,
``1 == 1.0``) and rendered for messages with `render_value` (at most 80 characters, non-printables
escaped, nothing at all for arguments whose name looks secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote

__all__ = ["WILDCARD", "ArgPath", "Slot", "json_equal", "json_key", "json_type", "parse_arg_path", "render_value"]

#: The step that selects every item of an array.
WILDCARD = "[*]"

_IDENT = re.compile(r"[A-Za-z0-9_\-]+")
_SHOWN = 80  # at most this many characters of a value appear in a message
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "auth",  # authorization, auth_header, oauth
    "apikey",
    "api_key",
    "key",
    "credential",
    "cookie",
    "private",
)
_BRANCH_KEYS = ("anyOf", "oneOf", "allOf")
_CONDITIONAL_KEYS = ("if", "then", "else")


class Slot(NamedTuple):
    """One value selected by an argument path.

    `present` and `value` come first so that `present, value, *_ = slot` works. `where` is the
    concrete path (`edits[1].path`); `problem` is set when the arguments do not have the shape the
    path expects (the value is then the offending container).
    """

    present: bool
    value: Any
    where: str
    problem: str | None = None


def _looks_secret(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return any(word in lowered for word in _SECRET_WORDS)


@dataclass(frozen=True, slots=True)
class ArgPath:
    """A parsed argument path. Build with `parse_arg_path`."""

    text: str
    steps: tuple[str, ...]  # identifiers, and WILDCARD for "[*]"
    looks_secret: bool = field(default=False, compare=False)

    @property
    def has_wildcard(self) -> bool:
        """Whether the path selects array items (and so can select many values)."""
        return WILDCARD in self.steps

    def __str__(self) -> str:
        return self.text

    # -- values --------------------------------------------------------------------------------

    def values(self, arguments: Mapping[str, Any] | None) -> list[Slot]:
        """Every value this path selects in `arguments`, as `Slot`s (see the module docstring)."""
        if len(self.steps) == 1 and isinstance(arguments, Mapping):  # fast path: a top-level argument
            name = self.steps[0]
            return [Slot(True, arguments[name], name) if name in arguments else Slot(False, None, name)]
        found: list[Slot] = []
        self._collect({} if arguments is None else arguments, 0, "", found)
        return found

    def _collect(self, value: Any, index: int, where: str, found: list[Slot]) -> None:
        """Follow steps[index:] from `value` (found at `where`), appending the selected slots."""
        if index == len(self.steps):
            found.append(Slot(True, value, where))
            return
        step = self.steps[index]
        if value is None:  # JSON null on the way: nothing was given
            found.append(Slot(False, None, self._rest(where, index)))
        elif step == WILDCARD:
            if not isinstance(value, list | tuple):
                found.append(Slot(True, value, where, f"argument '{where}' must be an array (for '{self.text}')"))
                return
            for position, item in enumerate(value):
                self._collect(item, index + 1, f"{where}[{position}]", found)
        elif not isinstance(value, Mapping):
            label = where or "arguments"
            found.append(Slot(True, value, label, f"argument '{label}' must be an object (for '{self.text}')"))
        elif step not in value:
            found.append(Slot(False, None, self._rest(where, index)))
        else:
            self._collect(value[step], index + 1, f"{where}.{step}" if where else step, found)

    def _rest(self, where: str, index: int) -> str:
        """`where` followed by the uninstantiated steps from `index` on (for absent slots)."""
        text = where
        for step in self.steps[index:]:
            text += step if step == WILDCARD else (f".{step}" if text else step)
        return text

    # -- schema ----------------------------------------------------------------------------------

    def declared_in(self, input_schema: Mapping[str, Any] | None) -> bool:
        """Whether `input_schema` declares this path in `properties` at every level of nesting."""
        if not isinstance(input_schema, Mapping):
            return False
        walker = _SchemaWalker(input_schema)
        current: list[Mapping[str, Any]] = [input_schema]
        for step in self.steps:
            current = walker.children(current, step)
            if not current:
                return False
        return True


# ---------------------------------------------------------------------------------------------
# Argument values: JSON equality and safe rendering for messages
# ---------------------------------------------------------------------------------------------


def json_key(value: Any) -> Any:
    """A hashable form in which two values are equal exactly when they are equal as JSON.

    Booleans are not numbers, `1 == 1.0`, strings are not numbers, arrays compare item-wise, objects
    key-wise. Raises TypeError for a value that is not JSON.
    """
    if value is None:
        return ("z",)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, list | tuple):
        return ("a", tuple(json_key(item) for item in value))
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("object keys must be strings")
        return ("o", frozenset((k, json_key(v)) for k, v in value.items()))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality (see `json_key`)."""
    return bool(json_key(left) == json_key(right))


def json_type(value: Any) -> str:
    """The JSON type of a value, with an article, for messages: `a string`, `an array`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list | tuple) else "an object"


def render_value(value: Any, secret: bool = False) -> str:
    """A value as shown in a message: strings quoted with non-printables escaped and cut at 80
    characters, numbers as written, arrays and objects summarised (never their contents)."""
    if secret:
        return "(redacted)"
    if isinstance(value, str):
        head = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value[:_SHOWN])
        return f"'{head}'" + (f"... ({len(value)} characters)" if len(value) > _SHOWN else "")
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and value.bit_length() < 200:
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)[:_SHOWN]
    if isinstance(value, list | tuple):  # contents are never shown: they may hold secrets
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    return json_type(value)


def parse_arg_path(text: str) -> ArgPath:
    """Parse `text` per the grammar above. Raises ValueError naming the position of a syntax error."""
    if not isinstance(text, str) or not text:
        raise ValueError("an argument path must be a non-empty string such as 'path' or 'edits[*].path'")
    first = _IDENT.match(text)
    if first is None:
        raise ValueError(f"argument path {text!r} must start with a name (letters, digits, '_' or '-')")
    steps = [first.group()]
    position = first.end()
    while position < len(text):
        if text.startswith(WILDCARD, position):
            steps.append(WILDCARD)
            position += len(WILDCARD)
            continue
        name = _IDENT.match(text, position + 1) if text[position] == "." else None
        if name is None:
            raise ValueError(
                f"argument path {text!r}: unexpected {text[position : position + 10]!r} at position {position}; "
                "use '.name' for a nested argument and '[*]' for every item of an array"
            )
        steps.append(name.group())
        position = name.end()
    secret = any(_looks_secret(step) for step in steps if step != WILDCARD)
    return ArgPath(text=text, steps=tuple(steps), looks_secret=secret)


class _SchemaWalker:
    """Steps through a JSON Schema, following local `$ref`s and applicator branches, without cycles."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def children(self, schemas: list[Mapping[str, Any]], step: str) -> list[Mapping[str, Any]]:
        """The subschemas that `step` leads to from any alternative of any of `schemas`."""
        found: list[Mapping[str, Any]] = []
        seen: set[int] = set()
        for schema in schemas:
            for alternative in self._alternatives(schema, seen):
                found.extend(self._step(alternative, step))
        return found

    def _alternatives(self, schema: Any, seen: set[int]) -> Iterator[Mapping[str, Any]]:
        stack = [schema]
        while stack:
            current = stack.pop()
            if not isinstance(current, Mapping) or id(current) in seen:
                continue
            seen.add(id(current))
            yield current
            ref = current.get("$ref")
            if isinstance(ref, str):
                stack.append(self._resolve(ref))
            for key in _BRANCH_KEYS:
                branches = current.get(key)
                if isinstance(branches, list):
                    stack.extend(branches)
            stack.extend(current.get(key) for key in _CONDITIONAL_KEYS)

    @staticmethod
    def _step(schema: Mapping[str, Any], step: str) -> list[Mapping[str, Any]]:
        if step != WILDCARD:
            properties = schema.get("properties")
            if isinstance(properties, Mapping) and step in properties:
                child = properties[step]
                return [child if isinstance(child, Mapping) else {}] if child is not False else []
            return []
        return _item_schemas(schema)

    def _resolve(self, ref: str) -> Any:
        """A local reference (`#`, `#/$defs/X`, `#/definitions/X`, any JSON pointer); else None."""
        if not ref.startswith("#"):
            return None
        target: Any = self._root
        pointer = unquote(ref[1:])
        if not pointer:
            return target
        if not pointer.startswith("/"):
            return None
        for token in pointer[1:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                return None
        return target


def _item_schemas(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """What `[*]` steps into: `items` and `prefixItems` entries, or `{}` for an array with neither."""
    items = schema.get("items")
    found: list[Mapping[str, Any]] = []
    if isinstance(items, Mapping):
        found.append(items)
    elif items is True:
        found.append({})
    elif isinstance(items, list):  # draft 4-7 tuple form
        found.extend(item for item in items if isinstance(item, Mapping))
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        found.extend(item for item in prefix if isinstance(item, Mapping))
    declared_type = schema.get("type")
    is_array = declared_type == "array" or (isinstance(declared_type, list) and "array" in declared_type)
    if not found and items is None and prefix is None and is_array:
        found.append({})
    return found
