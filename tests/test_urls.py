"""The `url` constraint: strict parsing, host canonicalisation, IP spellings, ports (SPEC §3)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from mcp_firewall.policy.constraints import ConstraintSpecError, compile_constraint
from mcp_firewall.policy.urls import (
    Host,
    UrlError,
    compile_url_policy,
    parse_host,
    parse_ipv4,
    parse_url,
)

GOOD = compile_url_policy({"hosts": ["good.com", "*.example.com", "127.0.0.1", "::1", "bücher.de"]})


def allowed(url: str, policy: Any = GOOD) -> bool:
    return bool(policy.check(url) is None)


# ---------------------------------------------------------------------------------------------
# Hosts and schemes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://good.com",
        "https://good.com/",
        "https://good.com/path?q=1#frag",
        "https://good.com/a@b",  # '@' after the authority is path, not userinfo
        "HTTPS://Good.COM./x",  # scheme and host case-insensitive, trailing dot stripped
        "https://GOOD.COM",
        "https://a.example.com/",
        "https://a.b.c.example.com/",  # any subdomain depth
        "https://good.com:443/",  # explicit default port
        "https://good.com:0443/",
        "https://good.com?x",
        "https://good.com#x",
        "https://bücher.de/",  # IDNA: compared in ASCII form
        "https://xn--bcher-kva.de/",
        "https://BÜCHER.de/",
        "https://127.0.0.1/",
        "https://[::1]/",
    ],
)
def test_allowed_urls(url: str) -> None:
    assert GOOD.check(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.com/", "host 'evil.com' is not allowed"),
        ("https://example.com/", "host 'example.com' is not allowed"),  # *.example.com is subdomains only
        ("https://evilexample.com/", "not allowed"),
        ("https://example.com.evil.com/", "not allowed"),
        ("https://good.com.evil.com/", "not allowed"),
        ("https://goodacom/", "not allowed"),
        ("https://good.com@evil.com/", "userinfo"),
        ("https://user:pass@good.com/", "userinfo"),
        ("https://good.com:443@evil.com/", "userinfo"),
        ("https://@good.com/", "userinfo"),
        ("https://evil.com#@good.com", "host 'evil.com' is not allowed"),
        ("https://evil.com?@good.com", "host 'evil.com' is not allowed"),
        ("https://evil.com\\@good.com", "backslash"),
        ("https://good.com\\@evil.com", "backslash"),
        ("https:\\\\good.com", "backslash"),
        ("https://good.com\\.evil.com/", "backslash"),
        ("https://good.com /", "whitespace"),
        (" https://good.com/", "whitespace"),
        ("https://good.com/\n", "whitespace"),
        ("https://go\tod.com/", "whitespace"),
        ("https://good.com\x00.evil.com/", "control"),
        ("https://good\u200b.com/", "control"),
        ("https://good%2ecom/", "percent-encoded"),
        ("https://%67ood.com/", "percent-encoded"),
        ("https:good.com", "absolute URL"),
        ("https:/good.com", "absolute URL"),
        ("https:///good.com", "no host"),
        ("//good.com/", "absolute URL"),
        ("good.com", "absolute URL"),
        ("", "absolute URL"),
        ("https://", "no host"),
        ("https://good.com:/", "port"),
        ("https://good.com:8443/", "port 8443 is not allowed"),
        ("https://good.com:80/", "port 80 is not allowed"),
        ("https://good.com:99999/", "port"),
        ("https://good.com:4a3/", "port"),
        ("https://good.com:443:443/", "more than one ':'"),
        ("https://good.com:\u0664\u0664\u0663/", "port"),  # Arabic-Indic digits
        ("http://good.com/", "scheme 'http' is not one of https"),
        ("ftp://good.com/", "scheme"),
        ("javascript://good.com/%0Aalert(1)", "scheme"),
        ("file:///etc/passwd", "no host"),
        ("https://good.com../", "not a valid hostname"),
        ("https://.good.com/", "not a valid hostname"),
        ("https://goo_d.com/", "not allowed"),
        ("https://good.com!/", "not a valid hostname"),
        ("https://[::1/", "unterminated"),
        ("https://[::1]x/", "after the IPv6 literal"),
        ("https://[127.0.0.1]/", "not an IPv6 address"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://[v1.fe80::1]/", "IPv6"),
        ("https://bu\u0308cher.de.evil.com/", "not allowed"),
    ],
)
def test_refused_urls(url: str, reason: str) -> None:
    message = GOOD.check(url)
    assert message is not None and reason in message


def test_decomposed_idna_host_is_normalised() -> None:
    # 'u' + combining diaeresis maps (UTS #46 / NFC) to the same A-label as 'ü'
    assert GOOD.check("https://bu\u0308cher.de/") is None


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("Good.COM.", Host(name="good.com")),
        ("bücher.de", Host(name="xn--bcher-kva.de")),
        ("Bücher.DE", Host(name="xn--bcher-kva.de")),
        ("ｇｏｏｄ.com", Host(name="good.com")),  # full-width letters map to ASCII (UTS #46)
        ("\uff11\uff12\uff17.0.0.1", Host(ip=ipaddress.IPv4Address("127.0.0.1"))),  # full-width digits
        ("[::FFFF:127.0.0.1]", Host(ip=ipaddress.IPv4Address("127.0.0.1"))),
        ("[2001:db8::1]", Host(ip=ipaddress.IPv6Address("2001:db8::1"))),
    ],
)
def test_parse_host(host: str, canonical: Host) -> None:
    assert parse_host(host) == canonical


# ---------------------------------------------------------------------------------------------
# IP literals: every spelling
# ---------------------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.1",
    "0x7f.0.0.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "0177.1",
    "017700000001",
    "0177.0.0.01",
    "127.0.0.1.",
    "127.000.000.001",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:0001]",
    "[::FFFF:7F00:1]",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_the_listed_ip(spelling: str) -> None:
    assert parse_host(spelling) == Host(ip=ipaddress.IPv4Address("127.0.0.1"))
    assert allowed(f"https://{spelling}/")
    assert allowed(f"https://{spelling}:443/x")


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_ip_spellings_never_match_hostname_patterns(spelling: str) -> None:
    names_only = compile_url_policy({"hosts": ["*.example.com", "localhost", "*.localhost"]})
    assert not allowed(f"https://{spelling}/", names_only)


@pytest.mark.parametrize("listed", ["127.0.0.1", "0x7f.1", "2130706433", "::ffff:127.0.0.1", "[::ffff:7f00:1]"])
def test_a_listed_ip_matches_in_any_spelling(listed: str) -> None:
    policy = compile_url_policy({"hosts": [listed]})
    assert allowed("https://127.1/", policy)
    assert allowed("https://[::ffff:127.0.0.1]/", policy)
    assert not allowed("https://127.0.0.2/", policy)
    assert not allowed("https://localhost/", policy)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.2/",
        "https://0x7f.2/",
        "https://[::ffff:127.0.0.2]/",
        "https://[::127.0.0.1]/",  # IPv4-compatible (deprecated) is not the mapped form
        "https://[64:ff9b::7f00:1]/",  # NAT64 is a different address
        "https://[::2]/",
    ],
)
def test_other_ips_are_refused(url: str) -> None:
    assert not allowed(url)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"),
        ("0xff.0xff.0xff.0xff", "255.255.255.255"),
        ("010.010.010.010", "8.8.8.8"),
        ("192.168.1", "192.168.0.1"),
        ("1.2.3.0x", "1.2.3.0"),  # WHATWG: "0x" alone is zero
        ("00", "0.0.0.0"),
        ("0x" + "0" * 5000 + "7f.1", "127.0.0.1"),  # any number of leading zeros (WHATWG)
        ("0" * 5000 + "177.1", "127.0.0.1"),
    ],
)
def test_parse_ipv4(text: str, address: str) -> None:
    assert parse_ipv4(text) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "host",
    [
        "4294967296",
        "256.0.0.1",
        "1.2.3.256",
        "1.16777216",
        "1.2.3.4.5",
        "08.0.0.1",
        "0x7g.1",
        "1..1",
        "example.123",
        "example.0x1",
        "999999999999999999999",
        "1" * 5000,  # would exceed int()'s digit limit: must be refused, not crash
        "09",
        "0x7f.08",
    ],
)
def test_invalid_ipv4_like_hosts_are_refused(host: str) -> None:
    # WHATWG: a host whose last label is numeric is parsed as IPv4, and failing that, is invalid
    with pytest.raises(UrlError):
        parse_host(host)


@pytest.mark.parametrize("host", ["faß.de", "σς.gr", "a\u200db.com", "a\u3002b.com", "a\uff0eb.com", "a\uff61b.com"])
def test_hosts_that_idna_versions_read_differently_are_refused(host: str) -> None:
    with pytest.raises(UrlError, match="IDNA versions"):
        parse_host(host)


@pytest.mark.parametrize("host", ["1.2.3.4x", "0x7f.1x", "123abc", "a1.com", "1a"])
def test_hosts_not_ending_in_a_number_are_names(host: str) -> None:
    assert parse_host(host).ip is None


# ---------------------------------------------------------------------------------------------
# Schemes and ports
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "url", "ok"),
    [
        ({"hosts": ["h.com"]}, "https://h.com/", True),
        ({"hosts": ["h.com"]}, "http://h.com/", False),
        ({"hosts": ["h.com"], "schemes": ["http", "https"]}, "http://h.com/", True),
        ({"hosts": ["h.com"], "schemes": ["http", "https"]}, "HTTP://h.com:80/", True),
        ({"hosts": ["h.com"], "schemes": ["http"]}, "http://h.com:443/", False),
        ({"hosts": ["h.com"], "schemes": ["wss"]}, "wss://h.com/socket", True),
        ({"hosts": ["h.com"], "schemes": ["ws"]}, "ws://h.com:80/", True),
        ({"hosts": ["h.com"], "schemes": ["ftp"]}, "ftp://h.com/", True),
        ({"hosts": ["h.com"], "ports": [8443]}, "https://h.com:8443/", True),
        ({"hosts": ["h.com"], "ports": [8443]}, "https://h.com/", False),  # 443 is not listed
        ({"hosts": ["h.com"], "ports": [8443, 443]}, "https://h.com/", True),
        ({"hosts": ["h.com"], "ports": [8443]}, "https://h.com:8444/", False),
        ({"hosts": ["h.com"], "schemes": ["gopher"]}, "gopher://h.com/", True),  # no known default, none given
        ({"hosts": ["h.com"], "schemes": ["gopher"]}, "gopher://h.com:70/", False),
        ({"hosts": ["h.com"], "schemes": ["gopher"], "ports": [70]}, "gopher://h.com:70/", True),
        ({"hosts": ["h.com"], "schemes": ["gopher"], "ports": [70]}, "gopher://h.com/", False),
    ],
)
def test_schemes_and_ports(spec: dict[str, Any], url: str, ok: bool) -> None:
    assert allowed(url, compile_url_policy(spec)) is ok


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"hosts": []},
        {"hosts": ["*"]},
        {"hosts": ["a.*.com"]},
        {"hosts": ["*.127.0.0.1"]},
        {"hosts": ["*.1"]},
        {"hosts": ["good.com:443"]},
        {"hosts": ["https://good.com"]},
        {"hosts": ["user@good.com"]},
        {"hosts": ["1.2.3.256"]},
        {"hosts": ["h.com"], "schemes": ["ht tp"]},
        {"hosts": ["h.com"], "schemes": []},
        {"hosts": ["h.com"], "ports": [0]},
        {"hosts": ["h.com"], "ports": [70000]},
        {"hosts": ["h.com"], "ports": [True]},
        {"hosts": ["h.com"], "ports": ["443"]},
        {"hosts": ["h.com"], "extra": 1},
    ],
)
def test_bad_url_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(UrlError):
        compile_url_policy(spec)
    with pytest.raises(ConstraintSpecError) as info:
        compile_constraint("u", {"url": spec})
    assert info.value.key == "url"


def test_config_model_shape_is_accepted() -> None:
    # the config model passes url with defaults filled in, ports possibly None
    policy = compile_url_policy({"schemes": ["https"], "hosts": ["h.com"], "ports": None})
    assert allowed("https://h.com/", policy)


def test_url_constraint_messages() -> None:
    constraint = compile_constraint("url", {"url": {"hosts": ["good.com"]}})
    assert constraint.check({"url": "https://good.com/x"}) is None
    failure = constraint.check({"url": "https://good.com@evil.com/"})
    assert failure is not None and failure.constraint == "url" and failure.argument == "url"
    assert "userinfo" in failure.message
    failure = constraint.check({"url": 42})
    assert failure is not None and "expected a URL string" in failure.message


def test_parse_url_result() -> None:
    parsed = parse_url("HTTPS://User-Agent.Example.COM.:8443/x")
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", Host(name="user-agent.example.com"), 8443)
    assert parse_url("http://[::1]/").port == 80
