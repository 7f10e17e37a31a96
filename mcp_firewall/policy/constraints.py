"""Argument constraints (SPEC §3 "Argument constraints"), compiled once and checked per call.

`compile_constraint("edits[*].path", {"within": ["/srv/docs"]})` validates the reviewer's spec and
returns a `CompiledConstraint`; its `check(arguments)` returns None when every key holds for every
value the path selects, or the first `Failure`. Rules for a security reviewer:

* Every key must hold. A key never rewrites a value: what is checked is what is forwarded.
* An absent argument fails (`required`) unless `required: false` or `absent: true`; `absent: true`
  holds only when the argument is absent. For `[*]` paths an empty array selects nothing, so holds.
* Type mismatches fail (a number is not a path; `true` is not a number; `1` is not `"1"`).
* `check` never raises: an unexpected error (e.g. absurdly deep input) is itself a failure.
* Messages name the argument and the key and tell a model how to correct itself, but echo at most
  80 characters of a value, and nothing of a value (nor the expected value) whose argument name looks
  secret (password, token, secret, authorization, api_key, key...).

Whether a constraint applies to a tool at all (the tool must declare the argument) is decided by the
caller with `CompiledConstraint.applies_to(input_schema)`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from mcp_firewall.policy.argpaths import ArgPath, Slot, json_equal, json_key, json_type, parse_arg_path, render_value
from mcp_firewall.policy.paths import build_not_within, build_within
from mcp_firewall.policy.urls import compile_url_policy

__all__ = [
    "CONSTRAINT_KEYS",
    "CompiledConstraint",
    "ConstraintSpecError",
    "Failure",
    "compile_constraint",
    "json_equal",
    "json_key",
    "narrow_schema",
]

#: The keys a constraint may have, in the order of SPEC §3's table.
CONSTRAINT_KEYS = (
    "within",
    "not_within",
    "url",
    "pattern",
    "not_pattern",
    "enum",
    "const",
    "min",
    "max",
    "max_length",
    "schema",
    "absent",
    "required",
)
INTERNAL_ERROR = "the value could not be checked, so it is refused"

Check = Callable[[Any], str | None]  # value -> None when it holds, else the failure message


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a constraint did not hold: the concrete `argument` (`edits[1].path`), the `constraint` key
    that failed (`within`, `required`, ...) and a short `message` a model can act on."""

    argument: str
    constraint: str
    message: str

    def __str__(self) -> str:
        return f"argument '{self.argument}' fails '{self.constraint}': {self.message}"


class ConstraintSpecError(ValueError):
    """A constraint as written in a scope file is invalid; `key` is the offending key (None: the path)."""

    def __init__(self, arg_path: str, key: str | None, message: str) -> None:
        self.arg_path = arg_path
        self.key = key
        where = f"args.{arg_path}" + (f".{key}" if key else "")
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------------------------------------
# One builder per key: validate the spec value, return a checker
# ---------------------------------------------------------------------------------------------


def _walk_json(value: Any) -> None:
    """Raise ValueError when a spec value is not plain, finite JSON."""
    try:
        json_key(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"must be a JSON value ({error})") from None


def _build_url(value: Any, secret: bool) -> Check:
    policy = compile_url_policy(value)

    def check(arg: Any) -> str | None:
        if not isinstance(arg, str):
            return f"expected a URL string, got {json_type(arg)}"
        reason = policy.check(arg)
        if reason is None:
            return None
        return f"URL {render_value(arg, secret)} is not allowed" + ("" if secret else f": {reason}")

    return check


def _compile_regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError("must be a regular expression string")
    try:
        return re.compile(value)
    except re.error as error:
        raise ValueError(f"is not a valid regular expression: {error}") from None


def _build_pattern(value: Any, secret: bool, forbid: bool = False) -> Check:
    regex = _compile_regex(value)
    described = "a pattern" if secret else render_value(value)

    def check(arg: Any) -> str | None:
        if not isinstance(arg, str):
            return f"expected a string, got {json_type(arg)}"
        matched = regex.fullmatch(arg) is not None
        if matched and forbid:
            return f"value {render_value(arg, secret)} matches the forbidden pattern {described}"
        if not matched and not forbid:
            return f"value {render_value(arg, secret)} does not match the pattern {described}"
        return None

    return check


def _build_not_pattern(value: Any, secret: bool) -> Check:
    return _build_pattern(value, secret, forbid=True)


def _build_enum(value: Any, secret: bool) -> Check:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("must be a non-empty list of values")
    _walk_json(value)
    allowed = frozenset(json_key(item) for item in value)
    shown_options = ", ".join(render_value(item) for item in value[:5]) + (", ..." if len(value) > 5 else "")
    described = "one of the allowed values" if secret else f"one of: {shown_options}"

    def check(arg: Any) -> str | None:
        return None if json_key(arg) in allowed else f"value {render_value(arg, secret)} is not {described}"

    return check


def _build_const(value: Any, secret: bool) -> Check:
    _walk_json(value)
    expected = json_key(value)
    described = "the allowed value" if secret else render_value(value)

    def check(arg: Any) -> str | None:
        return None if json_key(arg) == expected else f"value {render_value(arg, secret)} must be {described}"

    return check


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _build_min(value: Any, secret: bool) -> Check:
    bound = _number(value)

    def check(arg: Any) -> str | None:
        if not _is_number(arg):
            return f"expected a number, got {json_type(arg)}"
        if arg >= bound:
            return None
        return f"value {render_value(arg, secret)} is less than the minimum {render_value(bound)}"

    return check


def _build_max(value: Any, secret: bool) -> Check:
    bound = _number(value)

    def check(arg: Any) -> str | None:
        if not _is_number(arg):
            return f"expected a number, got {json_type(arg)}"
        if arg <= bound:
            return None
        return f"value {render_value(arg, secret)} is more than the maximum {render_value(bound)}"

    return check


def _build_max_length(value: Any, secret: bool) -> Check:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number >= 0")
    limit = value

    def check(arg: Any) -> str | None:
        if isinstance(arg, str):
            size = len(arg)  # code points
            return None if size <= limit else f"string has {size} characters; at most {limit} are allowed"
        if isinstance(arg, list | tuple):
            size = len(arg)
            return None if size <= limit else f"array has {size} items; at most {limit} are allowed"
        return f"expected a string or an array, got {json_type(arg)}"

    return check


def _formats_used(schema: Any) -> set[str]:
    """Every `format` named in a schema (not looking inside enum/const/default/examples)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _describe_schema_error(error: ValidationError, secret: bool) -> str:
    location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    where = f" at {location.lstrip('.')}" if location else ""
    expected = "" if secret else f" {render_value(error.validator_value)}"
    if error.validator == "format":
        return f"the value{where} is not a valid{expected}"
    return f"the value{where} fails the schema keyword '{error.validator}'{expected}"


def _build_schema(value: Any, secret: bool) -> Check:
    if not isinstance(value, Mapping | bool):
        raise ValueError("must be a JSON Schema (an object)")
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as error:
        raise ValueError(f"is not a valid JSON Schema (draft 2020-12): {error.message[:200]}") from None
    known = Draft202012Validator.FORMAT_CHECKER.checkers
    unknown = sorted(_formats_used(value) - set(known))
    if unknown:
        raise ValueError(f"uses format(s) that cannot be asserted: {', '.join(unknown)}")
    validator = Draft202012Validator(value, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def check(arg: Any) -> str | None:
        error = best_match(validator.iter_errors(arg))
        return None if error is None else _describe_schema_error(error, secret)

    return check


_BUILDERS: Mapping[str, Callable[[Any, bool], Check]] = {
    "within": build_within,
    "not_within": build_not_within,
    "url": _build_url,
    "pattern": _build_pattern,
    "not_pattern": _build_not_pattern,
    "enum": _build_enum,
    "const": _build_const,
    "min": _build_min,
    "max": _build_max,
    "max_length": _build_max_length,
    "schema": _build_schema,
}


# ---------------------------------------------------------------------------------------------
# The compiled constraint
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledConstraint:
    """One `args:` entry, ready to check. Build with `compile_constraint`."""

    path: ArgPath
    spec: Mapping[str, Any]  # the keys as written (for describe/explain/diff)
    checks: tuple[tuple[str, Check], ...]
    absent_ok: bool  # required: false, or absent: true
    must_be_absent: bool  # absent: true

    def applies_to(self, input_schema: Mapping[str, Any] | None) -> bool:
        """Whether the tool declares this argument, so that the constraint applies to it."""
        return self.path.declared_in(input_schema)

    def check(self, arguments: Mapping[str, Any] | None) -> Failure | None:
        """None when every key holds for every selected value; otherwise the first Failure. Never raises."""
        try:
            for slot in self.path.values(arguments):
                failure = self._check_slot(slot)
                if failure is not None:
                    return failure
        except Exception:  # fail closed: a value we cannot check is refused, never forwarded
            return Failure(self.path.text, self._first_key(), INTERNAL_ERROR)
        return None

    def _check_slot(self, slot: Slot) -> Failure | None:
        if slot.problem is not None:
            return Failure(slot.where, self._first_key(), slot.problem)
        if not slot.present:
            if self.absent_ok:
                return None
            return Failure(slot.where, "required", f"argument '{slot.where}' is required by policy")
        if self.must_be_absent:
            return Failure(slot.where, "absent", f"argument '{slot.where}' must not be given")
        for key, check in self.checks:
            message = check(slot.value)
            if message is not None:
                return Failure(slot.where, key, message)
        return None

    def _first_key(self) -> str:
        return self.checks[0][0] if self.checks else ("absent" if self.must_be_absent else "required")

    def describe(self) -> str:
        """`path: within [/srv/docs]; max_length 10` — for `tools`, `explain` and `diff`."""
        shown = {key: _shown(value) for key, value in self.spec.items()}
        parts = [f"{key} {json.dumps(value, default=str, ensure_ascii=False)}" for key, value in shown.items()]
        return f"{self.path.text}: " + ("; ".join(parts) if parts else "required")


def _shown(value: Any) -> Any:
    """A spec value as a reviewer reads it: defaults left unset (`url.ports: null`) are not shown."""
    if isinstance(value, Mapping):
        return {key: item for key, item in value.items() if item is not None}
    return value


def _presence(arg_path: str, spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(absent_ok, must_be_absent) from the `absent` and `required` keys."""
    absent = spec.get("absent", False)
    required = spec.get("required", True)
    for key, flag in (("absent", absent), ("required", required)):
        if not isinstance(flag, bool):
            raise ConstraintSpecError(arg_path, key, "must be true or false")
    if absent and "required" in spec and required:
        raise ConstraintSpecError(arg_path, "absent", "absent: true contradicts required: true")
    if "absent" in spec and not absent and not required:
        raise ConstraintSpecError(arg_path, "absent", "absent: false contradicts required: false")
    value_keys = [key for key in spec if key in _BUILDERS]
    if absent and value_keys:
        raise ConstraintSpecError(arg_path, "absent", f"absent: true cannot be combined with {', '.join(value_keys)}")
    return (absent or not required), absent


def compile_constraint(arg_path: str, spec: Mapping[str, Any]) -> CompiledConstraint:
    """Validate and compile one constraint. Raises ConstraintSpecError (a ValueError) naming the key."""
    try:
        path = parse_arg_path(arg_path)
    except ValueError as error:
        raise ConstraintSpecError(str(arg_path), None, str(error)) from None
    if not isinstance(spec, Mapping):
        raise ConstraintSpecError(arg_path, None, "a constraint must be a mapping such as {within: [/srv/docs]}")
    unknown = [str(key) for key in spec if key not in CONSTRAINT_KEYS]
    if unknown:
        known = ", ".join(CONSTRAINT_KEYS)
        raise ConstraintSpecError(arg_path, unknown[0], f"unknown constraint key; use one of {known}")
    if "min" in spec and "max" in spec and _is_number(spec["min"]) and _is_number(spec["max"]):
        if spec["min"] > spec["max"]:
            raise ConstraintSpecError(arg_path, "min", "min is greater than max")
    absent_ok, must_be_absent = _presence(arg_path, spec)
    checks: list[tuple[str, Check]] = []
    for key, value in spec.items():
        if key in _BUILDERS:
            try:
                checks.append((key, _BUILDERS[key](value, path.looks_secret)))
            except ValueError as error:
                raise ConstraintSpecError(arg_path, key, str(error)) from None
    return CompiledConstraint(path, dict(spec), tuple(checks), absent_ok, must_be_absent)


# ---------------------------------------------------------------------------------------------
# Showing agents a tighter inputSchema
# ---------------------------------------------------------------------------------------------

_NON_ECMA_REGEX = re.compile(r"\(\?P|\(\?[aiLmsux]|\(\?#|\\[AZz]")


def narrow_schema(property_schema: Mapping[str, Any] | bool, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one property's JSON Schema, narrowed where `spec` maps onto JSON Schema.

    enum (intersected with an existing enum), const, pattern (anchored `^(?:...)$`, only when the
    regex is also valid ECMA-262 syntax as far as a simple check can tell; an existing pattern is
    kept and the new one added under `allOf`), not_pattern (as `not: {pattern}`), min/max
    (`minimum`/`maximum`, the tighter bound wins), max_length (`maxLength` for strings, `maxItems`
    for arrays, both when the type is not known). For a `[*]` path pass the items' schema. This is
    advice shown to agents; enforcement is always `CompiledConstraint.check`.
    """
    narrowed: dict[str, Any] = json.loads(json.dumps(property_schema)) if isinstance(property_schema, Mapping) else {}
    if "enum" in spec:
        options = list(spec["enum"])
        if isinstance(narrowed.get("enum"), list):
            options = [item for item in narrowed["enum"] if any(json_equal(item, o) for o in options)]
        narrowed["enum"] = options
    if "const" in spec:
        narrowed["const"] = spec["const"]
    for key, keyword in (("pattern", "pattern"), ("not_pattern", "not")):
        regex = spec.get(key)
        if isinstance(regex, str) and not _NON_ECMA_REGEX.search(regex):
            rule = {"pattern": f"^(?:{regex})$"}
            _add_conjunct(narrowed, keyword, rule)
    _tighten(narrowed, "minimum", spec.get("min"), max)
    _tighten(narrowed, "maximum", spec.get("max"), min)
    if "max_length" in spec:
        types = narrowed.get("type")
        kinds = {types} if isinstance(types, str) else set(types) if isinstance(types, list) else set()
        if "string" in kinds or not kinds & {"string", "array"}:
            _tighten(narrowed, "maxLength", spec["max_length"], min)
        if "array" in kinds or not kinds & {"string", "array"}:
            _tighten(narrowed, "maxItems", spec["max_length"], min)
    return narrowed


def _add_conjunct(schema: dict[str, Any], keyword: str, rule: dict[str, Any]) -> None:
    if keyword == "not":
        rule = {"not": rule}
    elif "pattern" not in schema:
        schema["pattern"] = rule["pattern"]
        return
    schema.setdefault("allOf", []).append(rule)


def _tighten(schema: dict[str, Any], keyword: str, bound: Any, pick: Callable[[Any, Any], Any]) -> None:
    if not _is_number(bound):
        return
    current = schema.get(keyword)
    schema[keyword] = pick(current, bound) if _is_number(current) else bound
