"""Argument constraints (SPEC §3 "Argument constraints"): what one `args:` entry of an allow rule may say."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from ._base import ConfigModel
from ._fields import Dir, Regex, check_host, check_schema, field_error

__all__ = ["ArgConstraint", "UrlConstraint", "drop_null"]

Host = Annotated[str, AfterValidator(check_host)]


def _check_scheme(value: str) -> str:
    if value != value.lower() or not value[:1].isalpha() or not all(c.isalnum() or c in "+.-" for c in value):
        raise field_error(
            "bad_url_constraint", f"invalid scheme {value!r}: write it in lowercase, without '://' (e.g. https)"
        )
    return value


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise field_error("bad_url_constraint", f"invalid port {value}: ports are 1-65535")
    return value


Scheme = Annotated[str, AfterValidator(_check_scheme)]
Port = Annotated[int, AfterValidator(_check_port)]


class UrlConstraint(ConfigModel):
    """The value parses as an absolute URL without userinfo, whose scheme, host and port are listed."""

    schemes: list[Scheme] = Field(default_factory=lambda: ["https"], min_length=1)
    """Allowed schemes, lowercase (default: https only)."""
    hosts: list[Host] = Field(min_length=1)
    """Allowed hosts: names (case-insensitive), `*.example.com` for subdomains only, or IP literals."""
    ports: list[Port] | None = None
    """Allowed ports; without it only the scheme's default port is allowed."""


def drop_null(schema: dict[str, Any]) -> None:
    """JSON Schema tweak for models that refuse `null` values: only `const` may be null, and no key has a
    default that a file could write (an unset key and a written key mean different things)."""
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name != "const" and isinstance(options, list):
            kept = [option for option in options if option != {"type": "null"}]
            if len(kept) == 1:
                del prop["anyOf"]
                prop.update(kept[0])
        if prop.get("default", 0) is None:
            del prop["default"]


class ArgConstraint(ConfigModel, json_schema_extra=drop_null):
    """Every key given must hold for the argument (SPEC §3 table)."""

    within: list[Dir] | None = None
    """A normalised absolute POSIX path that is one of these dirs or beneath one, component-wise."""
    not_within: list[Dir] | None = None
    """A normalised absolute POSIX path in none of these dirs."""
    url: UrlConstraint | None = None
    """An absolute URL whose scheme, host and port are listed."""
    pattern: Regex | None = None
    """The whole string matches this regular expression."""
    not_pattern: Regex | None = None
    """The whole string does not match this regular expression."""
    enum: list[Any] | None = Field(default=None, min_length=1)
    """The value equals one of these (JSON equality: 1 is not "1")."""
    const: Any = None
    """The value equals this (JSON equality); `const: null` means the value must be null."""
    min: float | None = None
    """A number at least this."""
    max: float | None = None
    """A number at most this."""
    max_length: int | None = Field(default=None, ge=0)
    """A string of at most N code points, or an array of at most N items."""
    schema_: Annotated[dict[str, Any], AfterValidator(check_schema)] | None = Field(default=None, alias="schema")
    """The value validates against this JSON Schema (draft 2020-12, formats asserted)."""
    absent: bool | None = None
    """true: the argument must not be given."""
    required: bool = True
    """false: the argument may be absent (by default a constrained argument that is absent fails)."""

    @field_validator(
        "within",
        "not_within",
        "url",
        "pattern",
        "not_pattern",
        "enum",
        "min",
        "max",
        "max_length",
        "schema_",
        "absent",
        "required",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("expected a value, found null (empty value); remove the key or give a value")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ArgConstraint:
        keys = self.model_fields_set
        if not keys:
            raise ValueError("empty constraint: give at least one of " + ", ".join(_SPEC_KEYS))
        if self.absent and keys - {"absent", "required"}:
            others = ", ".join(sorted(_spec_name(k) for k in keys - {"absent", "required"}))
            raise ValueError(f"absent: true means the argument must not be given; it cannot be combined with {others}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g}): no value can hold")
        return self

    def spec(self) -> dict[str, Any]:
        """Exactly the keys written in the file, by their SPEC names (`schema`, not `schema_`).

        `url` is given in full, with its defaults filled in (`schemes: [https]`, `ports: None`).
        """
        result: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name in self.model_fields_set:
                value = getattr(self, name)
                result[_spec_name(name)] = value.model_dump() if isinstance(value, UrlConstraint) else value
        return result


def _spec_name(field: str) -> str:
    return "schema" if field == "schema_" else field


_SPEC_KEYS = tuple(_spec_name(name) for name in ArgConstraint.model_fields)
