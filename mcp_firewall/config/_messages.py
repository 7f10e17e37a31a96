"""pydantic errors → `ConfigIssue`s that point at the YAML node and say what is wrong and what is expected."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigIssue
from ._base import Location
from ._fields import OWN_ERROR_CODES, describe
from ._yaml import DataPath, SourceMap, render_path

__all__ = ["validation_issues"]

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def validation_issues(
    exc: ValidationError, model: type[BaseModel], data: Any, source: SourceMap, written: Mapping[DataPath, str]
) -> list[ConfigIssue]:
    """One issue per pydantic error, at the closest node the file has for the error's location."""
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        path, at_key = _data_path(error, data)
        location = _location(error, path, at_key, source)
        message = _message(error, path, model, written)
        shown = path[:-1] if error["type"] in ("missing", "invalid_key") or at_key else path
        prefix = f"{render_path(shown)}: " if shown else ""
        code = error["type"] if error["type"] in OWN_ERROR_CODES else "schema_error"
        issue = ConfigIssue(location.file, location.line, location.column, code, prefix + message)
        if issue not in issues:
            issues.append(issue)
    return issues


def _data_path(error: ErrorDetails, data: Any) -> tuple[DataPath, bool]:
    """The error's location as a path into the data: union tags dropped, `[key]` noted."""
    loc = error["loc"]
    path: list[Any] = []
    current = data
    at_key = False
    for index, element in enumerate(loc):
        if element == "[key]":
            at_key = True
        elif isinstance(current, dict) and element in current:
            key = next(k for k in current if k == element)  # the key as written: True, not pydantic's 1
            path.append(key)
            current = current[key]
        elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
            path.append(element)
            current = current[element]
        elif index == len(loc) - 1 and error["type"] == "missing":
            path.append(element)
    return tuple(path), at_key


def _location(error: ErrorDetails, path: DataPath, at_key: bool, source: SourceMap) -> Location:
    if error["type"] == "missing":
        return source.locate(path[:-1])
    if at_key or error["type"] == "extra_forbidden":
        return source.locate(path)
    return source.locate_value(path)


def _message(error: ErrorDetails, path: DataPath, model: type[BaseModel], written: Mapping[DataPath, str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    found = describe(written[path]) if path in written else describe(error["input"])
    if kind == "extra_forbidden":
        return _unknown_key(path[-1], _model_at(model, error["loc"][:-1]))
    if kind == "missing":
        return _missing_key(path[-1], _model_at(model, error["loc"][:-1]))
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in OWN_ERROR_CODES:
        return error["msg"]
    if kind == "invalid_key" or (kind == "string_type" and error["loc"][-1:] == ("[key]",)):
        return f"key {describe(error['input'])} is not a name{_quote_hint('string_type', error['input'])}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, found {found}{_quote_hint(kind, error['input'])}"
    return _constraint_message(error, ctx, found)


def _constraint_message(error: ErrorDetails, ctx: dict[str, Any], found: str) -> str:
    kind = error["type"]
    if kind == "literal_error":
        return f"expected {ctx['expected']}, found {found}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"expected a number {words} {ctx[key]}, found {found}"
    if kind == "too_short":
        what = "entry" if isinstance(error["input"], dict) else "item"
        return f"expected at least {ctx['min_length']} {what}{'s' if ctx['min_length'] != 1 else ''}, found none"
    message = error["msg"]
    return message[:1].lower() + message[1:] + f", found {found}"


def _quote_hint(kind: str, value: Any) -> str:
    if kind != "string_type":
        return ""
    if isinstance(value, bool):
        return " (YAML reads yes/no/on/off/true/false as booleans: quote it)"
    if isinstance(value, int | float):
        return " (YAML reads this as a number: quote it)"
    return ""


def _unknown_key(key: Any, owner: type[BaseModel] | None) -> str:
    if owner is None:
        return f"unknown key {key!r}"
    expected = _field_names(owner)
    close = difflib.get_close_matches(str(key), expected, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r} (expected one of: {', '.join(expected)}){hint}"


def _missing_key(key: Any, owner: type[BaseModel] | None) -> str:
    field = _field(owner, key) if owner is not None else None
    text = field.description.rstrip(".") if field is not None and field.description else ""
    about = f" ({text[:1].lower()}{text[1:]})" if text else ""
    return f"missing required key {key!r}{about}"


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that pydantic was validating at `loc` (which still has its union tags)."""
    current: Any = model
    for element in loc:
        current = _step(current, element)
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _step(annotation: Any, element: int | str) -> Any:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = _field(annotation, element)
        return field.annotation if field is not None else None
    if origin is dict:
        return get_args(annotation)[1]
    if origin is list:
        return get_args(annotation)[0]
    if origin in (Union, types.UnionType):
        return _tagged_member(annotation, element)
    return None


def _tagged_member(annotation: Any, tag: int | str) -> Any:
    for member in get_args(annotation):
        if get_origin(member) is Annotated and any(
            isinstance(meta, Tag) and meta.tag == tag for meta in member.__metadata__
        ):
            return get_args(member)[0]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` until a model, list, dict or tagged union remains."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
