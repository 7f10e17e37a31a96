"""Properties of the constraint checks, over generated inputs (Hypothesis)."""

from __future__ import annotations

import ipaddress
import posixpath
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_firewall.policy.constraints import INTERNAL_ERROR, Failure, compile_constraint, json_equal, json_key
from mcp_firewall.policy.urls import Host, UrlError, compile_url_policy, parse_host, parse_url

# ---------------------------------------------------------------------------------------------
# IPv4 spellings
# ---------------------------------------------------------------------------------------------


def _spell_number(draw: st.DrawFn, number: int) -> str:
    style = draw(st.sampled_from(["dec", "hex", "HEX", "oct"]))
    if style == "hex":
        return hex(number)
    if style == "HEX":
        return "0X" + format(number, "X")
    if style == "oct" and number:
        return "0" + format(number, "o")
    return str(number)


@st.composite
def ipv4_spelling(draw: st.DrawFn, address: int) -> str:
    """Any WHATWG spelling of `address`: 1-4 parts, each decimal, hex or octal, maybe a trailing dot,
    or bracketed IPv4-mapped IPv6 (dotted or hex)."""
    octets = list(address.to_bytes(4, "big"))
    form = draw(st.sampled_from(["parts", "parts", "parts", "mapped-dotted", "mapped-hex"]))
    if form == "mapped-dotted":
        return f"[::ffff:{'.'.join(map(str, octets))}]"
    if form == "mapped-hex":
        return f"[::ffff:{address >> 16:x}:{address & 0xFFFF:x}]"
    count = draw(st.integers(1, 4))
    leading = octets[: count - 1]
    rest = int.from_bytes(bytes(octets[count - 1 :]), "big")
    text = ".".join(_spell_number(draw, n) for n in [*leading, rest])
    return text + draw(st.sampled_from(["", "."]))


@given(data=st.data(), address=st.integers(0, 2**32 - 1))
def test_every_ipv4_spelling_parses_to_the_same_address(data: st.DataObject, address: int) -> None:
    spelling = data.draw(ipv4_spelling(address))
    assert parse_host(spelling) == Host(ip=ipaddress.IPv4Address(address))


@given(data=st.data(), listed=st.integers(0, 2**32 - 1), other=st.integers(0, 2**32 - 1))
def test_equivalent_spellings_decide_alike(data: st.DataObject, listed: int, other: int) -> None:
    listed_spelling = data.draw(ipv4_spelling(listed)).strip("[]")
    policy = compile_url_policy({"hosts": [listed_spelling, "*.example.com"]})
    spellings = [data.draw(ipv4_spelling(other)) for _ in range(4)]
    decisions = {policy.check(f"https://{spelling}/x") is None for spelling in spellings}
    assert decisions == {listed == other}


# ---------------------------------------------------------------------------------------------
# check() never raises, on any JSON arguments
# ---------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
ARG_PATHS = ["path", "paths[*]", "edits[*].path", "options.mode", "m[*][*]", "api_key"]
SPECS: list[dict[str, Any]] = [
    {"within": ["/srv/docs"]},
    {"not_within": ["/srv/docs/private"], "required": False},
    {"url": {"hosts": ["good.com", "*.example.com", "127.0.0.1"], "schemes": ["https", "http"], "ports": [443, 8080]}},
    {"pattern": "[a-z]+"},
    {"not_pattern": ".*\\.env"},
    {"enum": [1, "a", None, [1, {"b": True}]]},
    {"const": {"mode": "r"}},
    {"min": -1, "max": 1.5},
    {"max_length": 3},
    {"schema": {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}}},
    {"schema": {"type": "string", "format": "uri"}},
    {"absent": True},
    {"required": False},
    {},
]
EDIT_LISTS = st.lists(st.fixed_dictionaries({}, optional={"path": JSON}))
OPTIONS = st.fixed_dictionaries({}, optional={"mode": JSON})
ARGUMENTS = st.dictionaries(
    st.sampled_from(["path", "paths", "edits", "options", "m", "api_key"]) | st.text(max_size=6),
    JSON | EDIT_LISTS | OPTIONS,
    max_size=4,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(ARG_PATHS), spec=st.sampled_from(SPECS), arguments=ARGUMENTS)
def test_check_never_raises(path: str, spec: dict[str, Any], arguments: dict[str, Any]) -> None:
    result = compile_constraint(path, spec).check(arguments)
    assert result is None or isinstance(result, Failure)
    if result is not None:
        assert result.message != INTERNAL_ERROR  # no hidden exception on ordinary input
        assert len(result.message) <= 300
        assert result.constraint in {*spec, "required", "absent"}


@given(value=JSON, other=JSON)
def test_json_equality_is_reflexive_symmetric_and_distinguishes_booleans(value: Any, other: Any) -> None:
    assert json_equal(value, value)
    assert json_equal(value, other) is json_equal(other, value)
    assert hash(json_key(value)) == hash(json_key(value))
    assert not json_equal([True], [1]) and not json_equal([False], [0])


# ---------------------------------------------------------------------------------------------
# within
# ---------------------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(["srv", "docs", "docs2", "etc", "passwd", "..", ".", "", "a b", "...", "x\\y", "\x00"])
PATHS = st.lists(SEGMENTS, min_size=0, max_size=7).map(lambda parts: "/" + "/".join(parts)) | st.text(max_size=30)
WITHIN = compile_constraint("path", {"within": ["/srv/docs", "/etc"]})


@settings(max_examples=500)
@given(path=PATHS)
def test_within_never_accepts_dot_segments_and_only_accepts_beneath(path: str) -> None:
    failure = WITHIN.check({"path": path})
    if ".." in path.split("/") or "." in path.split("/"):
        assert failure is not None and failure.constraint == "within"
    if failure is None:
        assert posixpath.normpath(path) == path and "\\" not in path and "\x00" not in path
        assert any(path == d or path.startswith(d + "/") for d in ("/srv/docs", "/etc"))


@given(path=PATHS)
def test_not_within_never_accepts_dot_segments(path: str) -> None:
    failure = compile_constraint("path", {"not_within": ["/srv/docs"]}).check({"path": path})
    if ".." in path.split("/"):
        assert failure is not None


# ---------------------------------------------------------------------------------------------
# URLs: strict parser against the standard library
# ---------------------------------------------------------------------------------------------

AUTHORITY = st.text(alphabet="good.cmevil@:#?/\\[]%0123456789xfX \t.", max_size=24)
GOOD_ONLY = compile_url_policy({"hosts": ["good.com"]})


@settings(max_examples=800)
@given(authority=AUTHORITY, scheme=st.sampled_from(["https", "HTTPS", "http", "hTTps"]))
def test_an_allowed_url_is_good_com_for_the_standard_library_too(authority: str, scheme: str) -> None:
    url = f"{scheme}://{authority}/x"
    try:
        parse_url(url)
    except UrlError:
        return
    if GOOD_ONLY.check(url) is None:
        split = urlsplit(url)
        assert split.hostname in ("good.com", "good.com.")
        assert split.port in (None, 443)
        assert "@" not in split.netloc


@given(text=st.text(max_size=60))
def test_parse_url_raises_only_url_error(text: str) -> None:
    try:
        parse_url(text)
    except UrlError:
        pass
