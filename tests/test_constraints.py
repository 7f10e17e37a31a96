"""Argument paths and every constraint key of SPEC §3, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_firewall.policy.argpaths import WILDCARD, parse_arg_path
from mcp_firewall.policy.constraints import (
    INTERNAL_ERROR,
    ConstraintSpecError,
    Failure,
    compile_constraint,
    json_equal,
    narrow_schema,
)

ABSENT = object()


def check(arg_path: str, spec: dict[str, Any], value: Any = ABSENT, **others: Any) -> Failure | None:
    """Check a constraint on `arg_path` (a top-level name here) with `value` (ABSENT: not given)."""
    arguments = dict(others)
    if value is not ABSENT:
        arguments[arg_path] = value
    return compile_constraint(arg_path, spec).check(arguments)


# ---------------------------------------------------------------------------------------------
# Argument paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("path", ("path",)),
        ("options.mode", ("options", "mode")),
        ("paths[*]", ("paths", WILDCARD)),
        ("edits[*].path", ("edits", WILDCARD, "path")),
        ("matrix[*][*]", ("matrix", WILDCARD, WILDCARD)),
        ("file-name", ("file-name",)),
        ("a_b.c2", ("a_b", "c2")),
    ],
)
def test_parse_arg_path(text: str, steps: tuple[str, ...]) -> None:
    assert parse_arg_path(text).steps == steps


@pytest.mark.parametrize(
    "text", ["", ".path", "path.", "a..b", "paths[]", "paths[0]", "paths[*", "[*]", "a b", "a.[*]", "a/b", "a*"]
)
def test_parse_arg_path_rejects_bad_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="argument path"):
        parse_arg_path(text)


@pytest.mark.parametrize(
    ("text", "arguments", "expected"),
    [
        ("path", {"path": "/x"}, [(True, "/x", "path")]),
        ("path", {}, [(False, None, "path")]),
        ("options.mode", {"options": {"mode": 1}}, [(True, 1, "options.mode")]),
        ("options.mode", {"options": {}}, [(False, None, "options.mode")]),
        ("options.mode", {"options": None}, [(False, None, "options.mode")]),
        ("options.mode", {}, [(False, None, "options.mode")]),
        ("paths[*]", {"paths": ["a", "b"]}, [(True, "a", "paths[0]"), (True, "b", "paths[1]")]),
        ("paths[*]", {"paths": []}, []),
        ("paths[*]", {}, [(False, None, "paths[*]")]),
        ("edits[*].path", {}, [(False, None, "edits[*].path")]),
        (
            "edits[*].path",
            {"edits": [{"path": "a"}, {}]},
            [(True, "a", "edits[0].path"), (False, None, "edits[1].path")],
        ),
        ("m[*][*]", {"m": [[1], [2, 3]]}, [(True, 1, "m[0][0]"), (True, 2, "m[1][0]"), (True, 3, "m[1][1]")]),
    ],
)
def test_values(text: str, arguments: dict[str, Any], expected: list[tuple[bool, Any, str]]) -> None:
    slots = parse_arg_path(text).values(arguments)
    assert [(s.present, s.value, s.where) for s in slots] == expected
    assert all(s.problem is None for s in slots)


@pytest.mark.parametrize(
    ("text", "arguments", "where"),
    [
        ("paths[*]", {"paths": "/etc/passwd"}, "paths"),
        ("paths[*]", {"paths": {"0": "/x"}}, "paths"),
        ("options.mode", {"options": "fast"}, "options"),
        ("edits[*].path", {"edits": ["/x"]}, "edits[0]"),
    ],
)
def test_values_shape_problems(text: str, arguments: dict[str, Any], where: str) -> None:
    (slot,) = parse_arg_path(text).values(arguments)
    assert slot.problem is not None and slot.where == where


_DEFS_SCHEMA = {
    "type": "object",
    "properties": {"edits": {"type": "array", "items": {"$ref": "#/$defs/Edit"}}},
    "$defs": {"Edit": {"type": "object", "properties": {"path": {"type": "string"}}}},
}
_ANYOF_SCHEMA = {
    "type": "object",
    "properties": {"target": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/T"}]}},
    "definitions": {"T": {"allOf": [{"properties": {"url": {"type": "string"}}}]}},
}
_RECURSIVE_SCHEMA = {
    "$ref": "#/$defs/Node",
    "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}, "name": {}}}},
}


@pytest.mark.parametrize(
    ("text", "schema", "declared"),
    [
        ("path", {"type": "object", "properties": {"path": {"type": "string"}}}, True),
        ("path", {"type": "object", "properties": {"other": {}}}, False),
        ("path", {"type": "object", "additionalProperties": True}, False),
        ("path", {"type": "object"}, False),
        ("options.mode", {"properties": {"options": {"properties": {"mode": {}}}}}, True),
        ("options.mode", {"properties": {"options": {"type": "object"}}}, False),
        ("paths[*]", {"properties": {"paths": {"type": "array", "items": {"type": "string"}}}}, True),
        ("paths[*]", {"properties": {"paths": {"type": "array"}}}, True),
        ("paths[*]", {"properties": {"paths": {"type": "string"}}}, False),
        ("edits[*].path", _DEFS_SCHEMA, True),
        ("edits[*].other", _DEFS_SCHEMA, False),
        ("target.url", _ANYOF_SCHEMA, True),
        ("child.child.child.name", _RECURSIVE_SCHEMA, True),
        ("child.nope", _RECURSIVE_SCHEMA, False),
        ("x", {"$ref": "https://example.com/schema"}, False),
        ("x", {"properties": {"x": False}}, False),
        ("x", {"properties": {"x": True}}, True),
    ],
)
def test_declared_in(text: str, schema: dict[str, Any], declared: bool) -> None:
    assert parse_arg_path(text).declared_in(schema) is declared
    assert compile_constraint(text, {"required": False}).applies_to(schema) is declared


# ---------------------------------------------------------------------------------------------
# within / not_within
# ---------------------------------------------------------------------------------------------

DOCS = {"within": ["/srv/docs"]}


@pytest.mark.parametrize(
    "value", ["/srv/docs", "/srv/docs/a", "/srv/docs/a/b.txt", "/srv/docs/..a", "/srv/docs/.hidden", "/srv/docs/a b"]
)
def test_within_holds(value: str) -> None:
    assert check("path", DOCS, value) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("/etc/passwd", "is not within /srv/docs"),
        ("/srv/docs2", "is not within"),
        ("/srv/docs2/a", "is not within"),
        ("/srv", "is not within"),
        ("/", "is not within"),
        ("/srv/docs/../etc", "'..' segment"),
        ("/srv/docs/..", "'..' segment"),
        ("/srv/docs/./a", "'.' segment"),
        ("/srv/docs//x", "empty segment"),
        ("/srv/docs/", "empty segment"),
        ("//srv/docs", "empty segment"),
        ("/srv/docs/a\x00b", "NUL"),
        ("/srv/docs\\..\\etc", "backslash"),
        ("srv/docs/a", "not absolute"),
        ("file:///srv/docs/a", "not absolute"),
        ("", "not absolute"),
        ("~/docs", "not absolute"),
    ],
)
def test_within_fails(value: str, fragment: str) -> None:
    failure = check("path", DOCS, value)
    assert failure is not None and failure.constraint == "within" and failure.argument == "path"
    assert fragment in failure.message
    if "segment" in fragment or fragment in ("NUL", "backslash", "not absolute"):
        assert "not a normalised absolute path" in failure.message


@pytest.mark.parametrize("value", [1, None, True, ["/srv/docs"], {"path": "/srv/docs"}])
def test_within_needs_a_string(value: Any) -> None:
    failure = check("path", DOCS, value)
    assert failure is not None and "expected a path string" in failure.message


def test_within_several_dirs_and_root() -> None:
    spec = {"within": ["/srv/docs", "/tmp/work"]}
    assert check("path", spec, "/tmp/work/x") is None
    assert check("path", {"within": ["/"]}, "/anything/at/all") is None
    assert check("path", {"within": ["/"]}, "/a/../b") is not None


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        ("/srv/docs/a", True),
        ("/srv/docs/secret", False),
        ("/srv/docs/secret/x", False),
        ("/srv/docs/secrets", True),
        ("/srv/docs/secret/../x", False),
        (5, False),
    ],
)
def test_not_within(value: Any, holds: bool) -> None:
    failure = check("path", {"not_within": ["/srv/docs/secret"]}, value)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.constraint == "not_within"


def test_within_and_not_within_combine() -> None:
    spec = {"within": ["/srv/docs"], "not_within": ["/srv/docs/private"]}
    assert check("path", spec, "/srv/docs/public/a") is None
    failure = check("path", spec, "/srv/docs/private/a")
    assert failure is not None and failure.constraint == "not_within"
    assert "is within /srv/docs/private" in failure.message


@pytest.mark.parametrize("bad", ["/srv/docs/", "srv", "/srv/../etc", "/srv//docs", "", 5])
def test_within_dirs_must_be_normalised(bad: Any) -> None:
    with pytest.raises(ConstraintSpecError) as info:
        compile_constraint("path", {"within": [bad]})
    assert info.value.key == "within"


# ---------------------------------------------------------------------------------------------
# pattern / not_pattern
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "holds"),
    [
        ({"pattern": "[a-z]+"}, "abc", True),
        ({"pattern": "[a-z]+"}, "abc1", False),  # whole string
        ({"pattern": "[a-z]+"}, "1abc", False),
        ({"pattern": "[a-z]+"}, "abc\n", False),  # fullmatch: no trailing newline slack
        ({"pattern": "[a-z]+"}, 5, False),
        ({"pattern": "[a-z]+"}, None, False),
        ({"not_pattern": ".*\\.env"}, "config.yaml", True),
        ({"not_pattern": ".*\\.env"}, "prod.env", False),
        ({"not_pattern": ".*\\.env"}, "prod.env.bak", True),
        ({"not_pattern": "x"}, 5, False),
    ],
)
def test_patterns(spec: dict[str, Any], value: Any, holds: bool) -> None:
    failure = check("name", spec, value)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.constraint == next(iter(spec))


def test_pattern_must_compile() -> None:
    with pytest.raises(ConstraintSpecError, match="pattern"):
        compile_constraint("name", {"pattern": "(unclosed"})


# ---------------------------------------------------------------------------------------------
# enum / const: JSON equality
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1, "1", False),
        (1, True, False),
        (0, False, False),
        (True, True, True),
        (None, None, True),
        (None, 0, False),
        (None, "None", False),
        ("a", "a", True),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1], [True], False),
        ([1], [1.0], True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": True}, False),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({}, [], False),
        ("", [], False),
        (2**53 + 1, float(2**53), False),
    ],
)
def test_json_equal(left: Any, right: Any, equal: bool) -> None:
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


@pytest.mark.parametrize(
    ("spec", "value", "holds"),
    [
        ({"enum": [1, "two", None]}, 1, True),
        ({"enum": [1, "two", None]}, 1.0, True),
        ({"enum": [1, "two", None]}, "1", False),
        ({"enum": [1, "two", None]}, True, False),
        ({"enum": [1, "two", None]}, None, True),
        ({"enum": [True]}, 1, False),
        ({"enum": [True]}, True, True),
        ({"enum": [[1, 2]]}, [1, 2], True),
        ({"enum": [[1, 2]]}, [1, True], False),
        ({"const": "read"}, "read", True),
        ({"const": "read"}, "READ", False),
        ({"const": 1}, True, False),
        ({"const": 1}, 1.0, True),
        ({"const": None}, None, True),
        ({"const": None}, 0, False),
        ({"const": {"mode": "r"}}, {"mode": "r"}, True),
        ({"const": {"mode": "r"}}, {"mode": "r", "x": 1}, False),
    ],
)
def test_enum_and_const(spec: dict[str, Any], value: Any, holds: bool) -> None:
    failure = check("mode", spec, value)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.constraint == next(iter(spec))


# ---------------------------------------------------------------------------------------------
# min / max / max_length
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "holds"),
    [
        ({"min": 1, "max": 10}, 1, True),
        ({"min": 1, "max": 10}, 10, True),
        ({"min": 1, "max": 10}, 5.5, True),
        ({"min": 1, "max": 10}, 0, False),
        ({"min": 1, "max": 10}, 10.0001, False),
        ({"min": 1, "max": 10}, True, False),  # a boolean is not a number
        ({"min": 0}, False, False),
        ({"min": 1, "max": 10}, "5", False),
        ({"min": 1, "max": 10}, None, False),
        ({"max": 10}, float("nan"), False),
        ({"max": 10}, float("-inf"), True),
        ({"min": -1.5}, -1.5, True),
    ],
)
def test_min_max(spec: dict[str, Any], value: Any, holds: bool) -> None:
    assert (check("n", spec, value) is None) is holds


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        ("abc", True),
        ("abcd", False),
        ("😀😀😀", True),  # three code points (six UTF-16 units, twelve UTF-8 bytes)
        ("😀😀😀😀", False),
        ("e\u0301e\u0301", False),  # four code points, though two graphemes
        ([1, 2, 3], True),
        ([1, 2, 3, 4], False),
        ([], True),
        (123, False),
        ({"a": 1}, False),
    ],
)
def test_max_length(value: Any, holds: bool) -> None:
    failure = check("content", {"max_length": 3}, value)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.constraint == "max_length"


# ---------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------

EMAIL = {"schema": {"type": "string", "format": "email"}}
OBJ = {"schema": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}}


@pytest.mark.parametrize(
    ("spec", "value", "holds"),
    [
        (EMAIL, "a@example.com", True),
        (EMAIL, "not-an-email", False),
        (EMAIL, 5, False),
        (OBJ, {"n": 3}, True),
        (OBJ, {"n": 4}, False),
        (OBJ, {}, False),
        (OBJ, {"n": 1.5}, False),
        ({"schema": {"type": "string", "format": "date"}}, "2026-02-30", False),
        ({"schema": {"type": "string", "format": "date"}}, "2026-02-28", True),
    ],
)
def test_schema(spec: dict[str, Any], value: Any, holds: bool) -> None:
    failure = check("to", spec, value)
    assert (failure is None) is holds
    if failure is not None:
        assert failure.constraint == "schema"


def test_schema_failure_names_the_keyword_and_location() -> None:
    failure = check("to", OBJ, {"n": 4})
    assert failure is not None and "'maximum'" in failure.message and "at n" in failure.message
    failure = check("to", EMAIL, "nope")
    assert failure is not None and "email" in failure.message


@pytest.mark.parametrize(
    "schema", [{"type": "nonsense"}, {"minLength": -1}, {"format": "made-up-format"}, ["not", "a", "schema"]]
)
def test_schema_must_be_valid_and_assertable(schema: Any) -> None:
    with pytest.raises(ConstraintSpecError) as info:
        compile_constraint("to", {"schema": schema})
    assert info.value.key == "schema"


# ---------------------------------------------------------------------------------------------
# absent / required
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "failed_key"),
    [
        (DOCS, ABSENT, "required"),
        ({**DOCS, "required": True}, ABSENT, "required"),
        ({**DOCS, "required": False}, ABSENT, None),
        ({**DOCS, "required": False}, "/srv/docs/a", None),
        ({**DOCS, "required": False}, "/etc", "within"),
        ({"absent": True}, ABSENT, None),
        ({"absent": True}, "anything", "absent"),
        ({"absent": True}, None, "absent"),  # null is a value that was given
        ({"absent": True, "required": False}, ABSENT, None),
        ({"absent": False}, ABSENT, "required"),
        ({"absent": False}, "x", None),
        ({"required": False}, ABSENT, None),
        ({}, ABSENT, "required"),
        ({}, "x", None),
    ],
)
def test_absent_and_required(spec: dict[str, Any], value: Any, failed_key: str | None) -> None:
    failure = check("path", spec, value)
    assert (failure.constraint if failure else None) == failed_key
    if failed_key == "required":
        assert failure is not None and failure.message == "argument 'path' is required by policy"


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"absent": True, "within": ["/x"]}, "absent"),
        ({"absent": True, "required": True}, "absent"),
        ({"absent": False, "required": False}, "absent"),
        ({"absent": "yes"}, "absent"),
        ({"required": "no"}, "required"),
        ({"within": ["/x"], "maximum": 3}, "maximum"),
        ({"min": 5, "max": 1}, "min"),
        ({"min": True}, "min"),
        ({"max": float("inf")}, "max"),
        ({"max_length": -1}, "max_length"),
        ({"max_length": 1.5}, "max_length"),
        ({"enum": []}, "enum"),
        ({"enum": "abc"}, "enum"),
        ({"const": float("nan")}, "const"),
        ({"url": {"schemes": ["https"]}}, "url"),
    ],
)
def test_bad_specs_name_the_key(spec: dict[str, Any], key: str) -> None:
    with pytest.raises(ConstraintSpecError) as info:
        compile_constraint("path", spec)
    assert info.value.key == key
    assert f"args.path.{key}" in str(info.value)


def test_bad_arg_path_is_a_spec_error() -> None:
    with pytest.raises(ConstraintSpecError) as info:
        compile_constraint("a..b", {"required": False})
    assert info.value.key is None


# ---------------------------------------------------------------------------------------------
# Wildcards, nesting and messages
# ---------------------------------------------------------------------------------------------


def test_one_bad_item_is_named_with_its_index() -> None:
    constraint = compile_constraint("edits[*].path", DOCS)
    arguments = {"edits": [{"path": "/srv/docs/a", "old": "x"}, {"path": "/srv/docs/../etc/passwd"}]}
    failure = constraint.check(arguments)
    assert failure == Failure(
        "edits[1].path",
        "within",
        "path '/srv/docs/../etc/passwd' is not a normalised absolute path: it has a '..' segment; "
        "send the normalised path",
    )
    assert constraint.check({"edits": [{"path": "/srv/docs/a"}, {"path": "/srv/docs/b"}]}) is None
    assert constraint.check({"edits": []}) is None


@pytest.mark.parametrize(
    ("arguments", "argument", "key"),
    [
        ({"paths": "/srv/docs/a"}, "paths", "within"),  # a string where an array is expected
        ({"paths": {"a": "/srv/docs"}}, "paths", "within"),
        ({"paths": ["/srv/docs", 7]}, "paths[1]", "within"),
        ({"paths": ["/srv/docs", "/etc"]}, "paths[1]", "within"),
        ({}, "paths[*]", "required"),
    ],
)
def test_array_paths(arguments: dict[str, Any], argument: str, key: str) -> None:
    failure = compile_constraint("paths[*]", DOCS).check(arguments)
    assert failure is not None and (failure.argument, failure.constraint) == (argument, key)


def test_nested_path() -> None:
    constraint = compile_constraint("options.mode", {"enum": ["r", "w"]})
    assert constraint.check({"options": {"mode": "r"}}) is None
    failure = constraint.check({"options": {"mode": "x"}})
    assert failure is not None and failure.argument == "options.mode"
    failure = constraint.check({"options": "rw"})
    assert failure is not None and failure.argument == "options" and "must be an object" in failure.message


def test_every_key_must_hold() -> None:
    spec = {"pattern": "[a-z/]+", "max_length": 5}
    assert check("s", spec, "abc") is None
    failure = check("s", spec, "abcdef")
    assert failure is not None and failure.constraint == "max_length"
    failure = check("s", spec, "ABC")
    assert failure is not None and failure.constraint == "pattern"


def test_long_values_are_truncated_in_messages() -> None:
    value = "/etc/" + "x" * 10_000
    failure = check("path", DOCS, value)
    assert failure is not None
    assert len(failure.message) < 250 and "x" * 81 not in failure.message
    assert "10005 characters" in failure.message


def test_control_characters_are_escaped_in_messages() -> None:
    failure = check("path", DOCS, "/etc/\u202epasswd\n")
    assert failure is not None and "\u202e" not in failure.message and "\n" not in failure.message


@pytest.mark.parametrize(
    "name",
    ["password", "api_key", "apiKey", "access_token", "client_secret", "Authorization", "ssh-key", "db.password"],
)
@pytest.mark.parametrize(
    "spec",
    [
        {"const": "hunter2-expected"},
        {"enum": ["hunter2-expected"]},
        {"pattern": "hunter2-expected"},
        {"max_length": 3},
        {"schema": {"const": "hunter2-expected"}},
        {"url": {"hosts": ["hunter2-expected.com"]}},
    ],
)
def test_secret_values_are_never_echoed(name: str, spec: dict[str, Any]) -> None:
    constraint = compile_constraint(name, spec)
    parts = name.split(".")
    arguments: dict[str, Any] = (
        {parts[0]: {parts[1]: "https://sUpErSeCrEt.com"}} if len(parts) > 1 else {name: "https://sUpErSeCrEt.com"}
    )
    failure = constraint.check(arguments)
    assert failure is not None
    assert "sUpErSeCrEt" not in failure.message and "sUpErSeCrEt".lower() not in failure.message
    assert "hunter2" not in failure.message


def test_check_never_raises_on_absurd_input() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    failure = compile_constraint("v", {"enum": [1]}).check({"v": deep})
    assert failure is not None and failure.message == INTERNAL_ERROR
    assert compile_constraint("v", DOCS).check(["not", "an", "object"]) is not None  # type: ignore[arg-type]
    assert compile_constraint("v", {"required": False}).check(None) is None


def test_describe() -> None:
    constraint = compile_constraint("path", {"within": ["/srv/docs"], "required": False})
    assert constraint.describe() == 'path: within ["/srv/docs"]; required false'


# ---------------------------------------------------------------------------------------------
# narrow_schema
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "spec", "expected"),
    [
        ({"type": "string"}, {"enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}),
        ({"type": "string", "enum": ["a", "b", "c"]}, {"enum": ["b", "z"]}, {"type": "string", "enum": ["b"]}),
        ({"type": "integer"}, {"const": 3}, {"type": "integer", "const": 3}),
        ({"type": "string"}, {"pattern": "[a-z]+|x"}, {"type": "string", "pattern": "^(?:[a-z]+|x)$"}),
        (
            {"type": "string", "pattern": "^a"},
            {"pattern": "ab"},
            {"type": "string", "pattern": "^a", "allOf": [{"pattern": "^(?:ab)$"}]},
        ),
        ({"type": "string"}, {"not_pattern": "x.*"}, {"type": "string", "allOf": [{"not": {"pattern": "^(?:x.*)$"}}]}),
        ({"type": "string"}, {"pattern": "(?P<n>a)"}, {"type": "string"}),  # not ECMA-262: left out
        (
            {"type": "number", "minimum": 5, "maximum": 100},
            {"min": 1, "max": 10},
            {"type": "number", "minimum": 5, "maximum": 10},
        ),
        ({"type": "string"}, {"max_length": 10}, {"type": "string", "maxLength": 10}),
        ({"type": "array", "maxItems": 3}, {"max_length": 10}, {"type": "array", "maxItems": 3}),
        ({}, {"max_length": 10}, {"maxLength": 10, "maxItems": 10}),
        ({"type": "string"}, {"within": ["/srv"]}, {"type": "string"}),
        (True, {"const": 1}, {"const": 1}),
    ],
)
def test_narrow_schema(prop: Any, spec: dict[str, Any], expected: dict[str, Any]) -> None:
    original = prop if isinstance(prop, bool) else dict(prop)
    assert narrow_schema(prop, spec) == expected
    assert prop == original  # a copy; the input is untouched
