"""A fast path for checking a call's arguments against the tool's `inputSchema` (SPEC §4 step 3).

`jsonschema` is the reference, but its validators cost ~10-15 us even for a two-property schema,
most of a decision's budget. Tool schemas in the wild use a small vocabulary (what pydantic, zod and
hand-written servers emit), so `compile_fast` turns a schema written only in that vocabulary into
plain Python predicates (~1 us). `InputValidator` uses the fast predicate only to *accept*: whatever
it does not accept, `jsonschema` decides, and every error message comes from `jsonschema`. So the fast
path can only ever make a decision faster, never different, provided it accepts nothing that
`jsonschema` rejects (tests/test_policy_properties.py checks that, and that the two agree, on
generated schemas and instances).

The vocabulary: boolean schemas; `type` (one name or a list); `properties`, `required`,
`additionalProperties` (boolean or schema), `minProperties`, `maxProperties`; `items` (one schema),
`minItems`, `maxItems`; `enum`, `const`; `minimum`, `maximum`, `exclusiveMinimum`,
`exclusiveMaximum` (numbers, draft 6 and later); `minLength`, `maxLength`, `pattern`; `anyOf`,
`allOf`, `oneOf`, `not`; annotations that never fail (`title`, `description`, `default`, `examples`,
`$comment`, `deprecated`, `readOnly`, `writeOnly`, `format`, `$schema`, `$defs`, `definitions`).
`format` is an annotation here exactly as in the reference validator, which is built without a
format checker. Any other keyword anywhere (`$ref`, `patternProperties`, `prefixItems`,
`multipleOf`, `uniqueItems`, ...), a `$schema` older than draft 6, or a pattern Python cannot
compile: no fast path, `jsonschema` validates everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sized
from typing import Any

from mcp_firewall.policy.argpaths import json_key

__all__ = ["InputValidator", "Predicate", "compile_fast"]

Predicate = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "$schema",
        "$defs",
        "definitions",
    }
)
_DIALECTS = frozenset(
    {
        "http://json-schema.org/draft-06/schema",
        "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    }
)


class _Unsupported(Exception):
    """The schema uses something outside the fast vocabulary."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: Mapping[str, Predicate] = {
    "string": lambda value: isinstance(value, str),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "number": _is_number,
    "integer": _is_integer,
}


def compile_fast(schema: Any) -> Predicate | None:
    """A predicate equivalent to validating against `schema`, or None when the schema is outside the vocabulary."""
    if isinstance(schema, Mapping) and "$schema" in schema:
        dialect = schema["$schema"]
        if not isinstance(dialect, str) or dialect.rstrip("#") not in _DIALECTS:
            return None
    try:
        return _compile(schema)
    except (_Unsupported, re.error, TypeError, ValueError, RecursionError):
        return None


class InputValidator:
    """`is_valid` through the fast path when it accepts, else `jsonschema`; `iter_errors` always `jsonschema`."""

    __slots__ = ("_fast", "_reference")

    def __init__(self, reference: Any, fast: Predicate | None) -> None:
        self._reference = reference
        self._fast = fast

    @property
    def has_fast_path(self) -> bool:
        return self._fast is not None

    def is_valid(self, instance: Any) -> bool:
        fast = self._fast
        if fast is not None:
            try:
                if fast(instance):
                    return True
            except RecursionError:
                pass
        return bool(self._reference.is_valid(instance))

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        return iter(self._reference.iter_errors(instance))


# ---------------------------------------------------------------------------------------------
# The compiler: one predicate per schema node
# ---------------------------------------------------------------------------------------------


def _compile(schema: Any) -> Predicate:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, Mapping):
        raise _Unsupported("a schema must be an object or a boolean")
    checks: list[Predicate] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        builder = _KEYWORDS.get(keyword)
        if builder is None:
            raise _Unsupported(keyword)
        check = builder(value, schema)
        if check is not None:
            checks.append(check)
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def node(instance: Any) -> bool:
        for check in frozen:
            if not check(instance):
                return False
        return True

    return node


def _always(instance: Any) -> bool:
    return True


def _never(instance: Any) -> bool:
    return False


def _type(value: Any, schema: Mapping[str, Any]) -> Predicate:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(name in _TYPES for name in names):
        raise _Unsupported("type")
    tests = tuple(_TYPES[name] for name in names)
    if len(tests) == 1:
        return tests[0]
    return lambda instance: any(test(instance) for test in tests)


def _properties(value: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(value, Mapping):
        raise _Unsupported("properties")
    compiled = tuple((name, _compile(sub)) for name, sub in value.items() if sub is not True)

    def properties(instance: Any) -> bool:
        if isinstance(instance, dict):
            for name, check in compiled:
                if name in instance and not check(instance[name]):
                    return False
        return True

    return properties


def _additional(value: Any, schema: Mapping[str, Any]) -> Predicate | None:
    declared = schema.get("properties") or {}
    if not isinstance(declared, Mapping):
        raise _Unsupported("properties")
    names = frozenset(declared)
    if value is True:
        return None
    check = _compile(value)

    def additional(instance: Any) -> bool:
        if isinstance(instance, dict):
            for name, item in instance.items():
                if name not in names and not check(item):
                    return False
        return True

    return additional


def _required(value: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _Unsupported("required")
    names = tuple(value)
    return lambda instance: not isinstance(instance, dict) or all(name in instance for name in names)


def _items(value: Any, schema: Mapping[str, Any]) -> Predicate | None:
    if isinstance(value, list):  # draft 7 tuple form: prefixItems semantics, not supported here
        raise _Unsupported("items")
    if value is True:
        return None
    check = _compile(value)
    return lambda instance: not isinstance(instance, list) or all(check(item) for item in instance)


def _count(keyword: str, kind: type[Sized], at_least: bool) -> Callable[[Any, Mapping[str, Any]], Predicate]:
    def build(value: Any, schema: Mapping[str, Any]) -> Predicate:
        if not _is_integer(value) or value < 0:
            raise _Unsupported(keyword)
        bound = int(value)
        if at_least:
            return lambda instance: not isinstance(instance, kind) or len(instance) >= bound
        return lambda instance: not isinstance(instance, kind) or len(instance) <= bound

    return build


def _bound(keyword: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Mapping[str, Any]], Predicate]:
    def build(value: Any, schema: Mapping[str, Any]) -> Predicate:
        if not _is_number(value):
            raise _Unsupported(keyword)  # e.g. draft 4's boolean exclusiveMaximum
        return lambda instance: not _is_number(instance) or compare(instance, value)

    return build


def _pattern(value: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(value, str):
        raise _Unsupported("pattern")
    search = re.compile(value).search
    return lambda instance: not isinstance(instance, str) or search(instance) is not None


def _enum(value: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(value, list):
        raise _Unsupported("enum")
    allowed = frozenset(json_key(item) for item in value)
    return lambda instance: _key(instance) in allowed


def _const(value: Any, schema: Mapping[str, Any]) -> Predicate:
    expected = json_key(value)
    return lambda instance: _key(instance) == expected


def _key(instance: Any) -> Any:
    try:
        return json_key(instance)
    except (TypeError, ValueError):
        return _NO_KEY


_NO_KEY = object()


def _branches(value: Any, keyword: str) -> tuple[Predicate, ...]:
    if not isinstance(value, list) or not value:
        raise _Unsupported(keyword)
    return tuple(_compile(branch) for branch in value)


def _any_of(value: Any, schema: Mapping[str, Any]) -> Predicate:
    branches = _branches(value, "anyOf")
    return lambda instance: any(branch(instance) for branch in branches)


def _all_of(value: Any, schema: Mapping[str, Any]) -> Predicate:
    branches = _branches(value, "allOf")
    return lambda instance: all(branch(instance) for branch in branches)


def _one_of(value: Any, schema: Mapping[str, Any]) -> Predicate:
    branches = _branches(value, "oneOf")
    return lambda instance: sum(1 for branch in branches if branch(instance)) == 1


def _not(value: Any, schema: Mapping[str, Any]) -> Predicate:
    check = _compile(value)
    return lambda instance: not check(instance)


_KEYWORDS: Mapping[str, Callable[[Any, Mapping[str, Any]], Predicate | None]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "minProperties": _count("minProperties", dict, at_least=True),
    "maxProperties": _count("maxProperties", dict, at_least=False),
    "items": _items,
    "minItems": _count("minItems", list, at_least=True),
    "maxItems": _count("maxItems", list, at_least=False),
    "minLength": _count("minLength", str, at_least=True),
    "maxLength": _count("maxLength", str, at_least=False),
    "minimum": _bound("minimum", lambda instance, bound: instance >= bound),
    "maximum": _bound("maximum", lambda instance, bound: instance <= bound),
    "exclusiveMinimum": _bound("exclusiveMinimum", lambda instance, bound: instance > bound),
    "exclusiveMaximum": _bound("exclusiveMaximum", lambda instance, bound: instance < bound),
    "pattern": _pattern,
    "enum": _enum,
    "const": _const,
    "anyOf": _any_of,
    "allOf": _all_of,
    "oneOf": _one_of,
    "not": _not,
}
