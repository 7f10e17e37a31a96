"""Field types and validators shared by the config models.

Each validator raises `PydanticCustomError` whose type is the issue code the loader reports
(`bad_regex`, `bad_schema`, `bad_arg_path`, `bad_dir`, `bad_url_constraint`, `bad_name`), or a
`ValueError` for plain shape problems (reported as `schema_error`). Messages are written for the
person fixing the file: they say what was found and what is expected.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime
from typing import Annotated, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "AGENT_NAME_PATTERN",
    "OWN_ERROR_CODES",
    "UPSTREAM_NAME_PATTERN",
    "AgentName",
    "ArgPath",
    "Dir",
    "Expires",
    "Regex",
    "ScopeName",
    "UpstreamName",
    "arg_path_problem",
    "check_host",
    "check_schema",
    "describe",
    "field_error",
]

UPSTREAM_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

OWN_ERROR_CODES = frozenset({"bad_regex", "bad_schema", "bad_arg_path", "bad_dir", "bad_url_constraint", "bad_name"})

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ARG_IDENT = re.compile(r"[A-Za-z0-9_-]+")


def field_error(code: str, message: str) -> PydanticCustomError:
    """An error whose type is the issue code; the message is literal (no template fields)."""
    return PydanticCustomError(code, message)


def describe(value: Any) -> str:
    """How a YAML value reads to a person: `string 'abc'`, `integer 5`, `a list`, `null (empty value)`."""
    if value is None:
        return "null (empty value)"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _name_checker(pattern: str, what: str, rule: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise field_error("bad_name", f"invalid {what} name {value!r}: {rule}")
        return value

    return check


UpstreamName = Annotated[
    str,
    AfterValidator(
        _name_checker(
            UPSTREAM_NAME_PATTERN,
            "upstream",
            "use a lowercase letter, then up to 31 lowercase letters, digits or '-' "
            "('_' is reserved for the '<upstream>__<tool>' separator)",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": UPSTREAM_NAME_PATTERN}),
]
AgentName = Annotated[
    str,
    AfterValidator(
        _name_checker(
            AGENT_NAME_PATTERN, "agent", "use a letter or digit, then up to 63 letters, digits, '.', '_' or '-'"
        )
    ),
    WithJsonSchema({"type": "string", "pattern": AGENT_NAME_PATTERN}),
]
ScopeName = Annotated[
    str,
    AfterValidator(
        _name_checker(
            AGENT_NAME_PATTERN,
            "scope",
            "use a letter or digit, then up to 63 letters, digits, '.', '_' or '-' "
            "(':' is reserved for the built-in scopes <upstream>:read, :write and :destructive)",
        )
    ),
    WithJsonSchema({"type": "string", "pattern": AGENT_NAME_PATTERN}),
]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise field_error("bad_regex", f"invalid regular expression {value!r}: {exc.msg}{where}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]


def _check_dir(value: str) -> str:
    problem = _dir_problem(value)
    if problem:
        raise field_error("bad_dir", f"{value!r} is not a normalised absolute POSIX path: {problem}")
    return value


def _dir_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return "it must start with '/'"
    if "\\" in value or "\x00" in value:
        return "it must not contain a backslash or NUL"
    if value == "/":
        return None
    segments = value[1:].split("/")
    if "" in segments:
        return "remove the empty segment ('//' or a trailing '/')"
    if "." in segments or ".." in segments:
        return "remove the '.' and '..' segments (paths are compared as written, never rewritten)"
    return None


Dir = Annotated[str, AfterValidator(_check_dir)]


def arg_path_problem(value: str) -> str | None:
    """Why `value` is not an argument path (`ident ('.' ident | '[*]')*`), or None when it is one."""
    pos = 0
    expect_ident = True
    while pos < len(value):
        if expect_ident:
            match = _ARG_IDENT.match(value, pos)
            if not match:
                return f"expected a name (letters, digits, '_' or '-') at position {pos}"
            pos, expect_ident = match.end(), False
        elif value.startswith("[*]", pos):
            pos += 3
        elif value.startswith(".", pos):
            pos, expect_ident = pos + 1, True
        else:
            return f"unexpected {value[pos]!r} at position {pos} (only '.name' and '[*]' may follow a name)"
    return "it ends where a name is expected" if expect_ident else None


def _check_arg_path(value: str) -> str:
    problem = arg_path_problem(value)
    if problem:
        raise field_error(
            "bad_arg_path", f"invalid argument path {value!r}: {problem}; write name, name.sub or name[*].sub"
        )
    return value


ArgPath = Annotated[
    str,
    AfterValidator(_check_arg_path),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+|\[\*\])*$"}),
]


def check_host(host: str) -> str:
    """A `url.hosts` entry: a host name, `*.domain`, or an IP literal; never a URL, port or bare `*`."""
    problem = _host_problem(host)
    if problem:
        raise field_error("bad_url_constraint", f"invalid host {host!r}: {problem}")
    return host


def _host_problem(host: str) -> str | None:
    if not host:
        return "it is empty"
    if "://" in host or "/" in host:
        return "give the host name alone, without scheme or path"
    if "@" in host:
        return "give the host name alone, without user information"
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in host:
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return "give the host without a port; list ports under `ports`"
        return None
    if "*" in host[2:] or (host.startswith("*") and not host.startswith("*.")):
        return "'*' is only allowed as a leading '*.' (subdomains of one domain)"
    return None


def check_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A `schema` constraint must itself be a valid draft 2020-12 JSON Schema."""
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(top level)"
        raise field_error("bad_schema", f"invalid JSON Schema at {where}: {exc.message}") from None
    return value


def _parse_expires(value: Any) -> Any:
    if isinstance(value, datetime):
        return _require_zone(value, value.isoformat())
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a date (YYYY-MM-DD) or an ISO 8601 date-time with a zone, found {describe(value)}")
    if _DATE_ONLY.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid date: {exc}") from None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected a date (YYYY-MM-DD) or an ISO 8601 date-time with a zone "
            f"(2027-06-30T18:00:00Z), found {describe(value)}"
        ) from None
    return _require_zone(parsed, value)


def _require_zone(value: datetime, text: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            f"date-time {text!r} has no zone: add 'Z' or an offset such as '+02:00', "
            f"or give a date alone (the agent then works through the end of that day, UTC)"
        )
    return value


Expires = Annotated[date | datetime, BeforeValidator(_parse_expires)]
