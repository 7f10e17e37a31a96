"""Strict URL parsing and the `url` argument constraint.

Security model
--------------
An argument that carries a URL is checked against an allow-list of schemes, hosts and ports. The
danger is a *parser differential*: the firewall reading one host while the upstream's HTTP client
connects to another. So this module refuses anything that parsers commonly disagree on, instead of
trying to interpret it:

* whitespace, control characters, other non-printable characters and backslashes anywhere;
* anything other than ``scheme://authority...`` (``https:evil.com``, ``https:///evil.com``);
* any ``@`` in the authority (userinfo: ``https://good.com@evil.com``);
* ``%`` in the host (percent-encoded hosts, IPv6 zone ids);
* an empty, non-numeric or out-of-range port;
* URLs longer than 8192 characters.

Hosts are compared in one canonical form:

* DNS names: IDNA (UTS #46, non-transitional, like browsers) to ASCII, lowercased, one trailing dot
  removed. The ``idna`` package does the conversion of non-ASCII names; ASCII names are only
  lowercased and checked to consist of ``[a-z0-9_-]`` labels. Non-ASCII characters that IDNA
  versions disagree on (ß, ς, ZWJ, ZWNJ, non-ASCII full stops) are refused.
* IPv4: decided by the WHATWG URL Standard's rules, so every spelling that a browser or a WHATWG
  client treats as an IPv4 address is one here too: ``127.0.0.1``, ``127.1``, ``0x7f.1``,
  ``0177.0.0.1``, ``2130706433``. A host whose last label is numeric but is not a valid IPv4 address
  (``1.2.3.256``, ``example.0x``... ) is refused rather than treated as a name.
* IPv6: bracketed literals only; an IPv4-mapped address (``[::ffff:127.0.0.1]``, ``[::ffff:7f00:1]``)
  is the IPv4 address it maps.

A hostname pattern never matches an IP and an IP never matches a hostname pattern.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import idna

__all__ = [
    "DEFAULT_PORTS",
    "IDNA_IMPLEMENTATION",
    "Host",
    "ParsedUrl",
    "UrlError",
    "UrlPolicy",
    "compile_url_policy",
    "parse_host",
    "parse_ipv4",
    "parse_url",
]

#: Which IDNA implementation converts non-ASCII hostnames (reported by diagnostics).
IDNA_IMPLEMENTATION = f"idna {idna.__version__} (UTS #46, non-transitional)"

#: The port a URL of each scheme uses when it names none.
DEFAULT_PORTS: Mapping[str, int] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "ssh": 22,
    "sftp": 22,
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_PORT = re.compile(r"[0-9]{1,5}")
_ASCII_LABEL = r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?"
_ASCII_NAME = re.compile(rf"(?:{_ASCII_LABEL}\.)*{_ASCII_LABEL}")
_AUTHORITY_END = re.compile(r"[/?#]")
_HEX_PART = re.compile(r"0[xX][0-9A-Fa-f]*")
_OCT_PART = re.compile(r"0[0-7]+")
_DEC_PART = re.compile(r"[0-9]+")
_MAX_URL_LENGTH = 8192
_IDNA_AMBIGUOUS = frozenset("\u00df\u03c2\u200c\u200d\u3002\uff0e\uff61")


class UrlError(ValueError):
    """A URL (or a host in a policy) that cannot be accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host: exactly one of `name` (ASCII, lowercase, no trailing dot) or `ip`."""

    name: str | None = None
    ip: IPAddress | None = None

    def __str__(self) -> str:
        if self.ip is not None:
            return f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return self.name or ""


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """The parts of a URL that the `url` constraint decides on."""

    scheme: str
    host: Host
    port: int | None  # explicit port, or the scheme's default; None when neither is known


# ---------------------------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------------------------


def _ends_in_a_number(labels: list[str]) -> bool:
    """WHATWG "ends in a number": the last label is all digits, or `0x` followed by hex digits."""
    last = labels[-1]
    if last and last.isascii() and last.isdigit():
        return True
    return _HEX_PART.fullmatch(last) is not None


def _ipv4_number(part: str) -> int:
    """One IPv4 part, WHATWG style: `0x` prefix is hex, a leading `0` is octal, otherwise decimal."""
    if len(part.lstrip("0xX")) > 12:  # out of range in any base; never hand int() a huge string
        raise UrlError("host is not a valid IPv4 address (a part is out of range)")
    if _HEX_PART.fullmatch(part):
        return int(part[2:], 16) if len(part) > 2 else 0
    if _OCT_PART.fullmatch(part):
        return int(part, 8)
    if _DEC_PART.fullmatch(part) and (part == "0" or not part.startswith("0")):  # "08" is bad octal
        return int(part, 10)
    raise UrlError(f"host part {part[:20]!r} is not a number")


def parse_ipv4(host: str) -> ipaddress.IPv4Address:
    """Parse an IPv4 host in any WHATWG spelling (1 to 4 parts, decimal/octal/hex). Raises UrlError."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or len(parts) > 4:
        raise UrlError("host is not a valid IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UrlError("host is not a valid IPv4 address (a part is out of range)")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _canonical_ip(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it maps."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_ipv6_literal(inner: str) -> Host:
    if "%" in inner:
        raise UrlError("IPv6 zone identifiers are not allowed")
    if not inner.isascii() or ":" not in inner:
        raise UrlError("the bracketed host is not an IPv6 address")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise UrlError("the bracketed host is not an IPv6 address") from None
    return Host(ip=_canonical_ip(address))


def _to_ascii(host: str) -> str:
    """IDNA-convert a non-ASCII host; ASCII hosts are only lowercased.

    Characters that IDNA 2003, IDNA 2008 and UTS #46 clients read differently are refused, so that
    the host the firewall allows is the host every HTTP client connects to: the deviation characters
    (ß, ς, ZWNJ, ZWJ: `faß.de` is `fass.de` to some clients) and the non-ASCII full stops.
    """
    if host.isascii():
        return host.lower()
    if any(char in _IDNA_AMBIGUOUS for char in host):
        raise UrlError("host has characters that IDNA versions read differently (ß, ς, ZWJ, ZWNJ, non-ASCII dots)")
    return _idna_to_ascii(host)


@lru_cache(maxsize=1024)
def _idna_to_ascii(host: str) -> str:
    """UTS #46 ToASCII (cached: the `idna` package is slow, and the result depends only on `host`)."""
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise UrlError("host is not a valid internationalised domain name") from None


def parse_host(host: str) -> Host:
    """Canonicalise a URL host (the authority without port). Raises UrlError when it is not acceptable.

    `[v6]` is an IPv6 literal; anything that WHATWG would read as IPv4 is an IPv4 address; the rest
    must be a DNS name of `[a-z0-9_-]` labels after IDNA conversion.
    """
    if host.startswith("[") and host.endswith("]"):
        return _parse_ipv6_literal(host[1:-1])
    if not host:
        raise UrlError("the URL has no host")
    if "%" in host:
        raise UrlError("percent-encoded hosts are not allowed")
    ascii_host = _to_ascii(host)
    labels = ascii_host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    if _ends_in_a_number(labels):
        return Host(ip=_canonical_ip(parse_ipv4(".".join(labels))))
    name = ".".join(labels)
    if len(name) > 253 or not _ASCII_NAME.fullmatch(name):
        raise UrlError("host is not a valid hostname")
    return Host(name=name)


# ---------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------


def _refuse_odd_characters(url: str) -> None:
    if len(url) > _MAX_URL_LENGTH:
        raise UrlError(f"the URL is longer than {_MAX_URL_LENGTH} characters")
    if "\\" in url:
        raise UrlError("the URL contains a backslash")
    # isprintable() is False for controls, format characters and every separator but the ASCII space
    if " " in url or not url.isprintable():
        raise UrlError("the URL contains whitespace or a control character")


def _split_authority(authority: str) -> tuple[str, str | None]:
    """Split `host[:port]` (host may be a bracketed IPv6 literal) into host and port text."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise UrlError("the URL has an unterminated IPv6 literal")
        host, rest = authority[: close + 1], authority[close + 1 :]
        if rest and not rest.startswith(":"):
            raise UrlError("the URL has characters after the IPv6 literal")
        return host, (rest[1:] if rest else None)
    host, colon, port = authority.partition(":")
    if ":" in port:
        raise UrlError("the URL's authority has more than one ':'")
    return host, (port if colon else None)


def _parse_port(port_text: str) -> int:
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise UrlError("the URL's port is not a number from 0 to 65535")
    return int(port_text)


def parse_url(url: str) -> ParsedUrl:
    """Parse an absolute `scheme://host[:port]...` URL strictly. Raises UrlError with the reason."""
    _refuse_odd_characters(url)
    scheme_text, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme_text):
        raise UrlError("not an absolute URL of the form scheme://host/...")
    end = _AUTHORITY_END.search(rest)
    authority = rest[: end.start()] if end else rest
    if "@" in authority:
        raise UrlError("URLs with userinfo ('@' before the host) are not allowed")
    host_text, port_text = _split_authority(authority)
    host = parse_host(host_text)
    scheme = scheme_text.lower()
    port = _parse_port(port_text) if port_text is not None else DEFAULT_PORTS.get(scheme)
    try:
        split = urlsplit(url)
    except ValueError:
        raise UrlError("the URL cannot be parsed") from None
    if split.scheme != scheme or split.netloc != authority:
        raise UrlError("the URL is ambiguous")  # our split and the standard library's disagree
    return ParsedUrl(scheme=scheme, host=host, port=port)


# ---------------------------------------------------------------------------------------------
# The compiled allow-list
# ---------------------------------------------------------------------------------------------


def _parse_listed_host(entry: str) -> tuple[str, Host]:
    """A policy host: `name`, `*.suffix`, an IP in any spelling, or a bare IPv6 address."""
    if entry.startswith("*."):
        suffix = parse_host(entry[2:])
        if suffix.name is None:
            raise UrlError(f"host pattern {entry!r}: a wildcard cannot be combined with an IP address")
        return "wildcard", suffix
    if "*" in entry:
        raise UrlError(f"host pattern {entry!r}: '*' is only allowed as a leading '*.'")
    if ":" in entry and not entry.startswith("["):
        entry = f"[{entry}]"
    try:
        return "exact", parse_host(entry)
    except UrlError as error:
        raise UrlError(f"host {entry!r}: {error}") from None


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """A compiled `url:` constraint: `check(value)` returns None when allowed, else the reason."""

    schemes: frozenset[str]
    names: frozenset[str]
    suffixes: frozenset[str]  # ".example.com" for "*.example.com"
    ips: frozenset[IPAddress]
    ports: frozenset[int] | None  # None: only the scheme's default port

    def host_allowed(self, host: Host) -> bool:
        """Whether a canonical host is on the list (IPs against IPs, names against names)."""
        if host.ip is not None:
            return host.ip in self.ips
        name = host.name or ""
        if name in self.names:
            return True
        dot = name.find(".", 1)
        while dot > 0:
            if name[dot:] in self.suffixes:
                return True
            dot = name.find(".", dot + 1)
        return False

    def port_allowed(self, scheme: str, port: int | None) -> bool:
        """Whether the effective port is allowed: listed, or the scheme's default when none is listed."""
        if self.ports is None:
            return port == DEFAULT_PORTS.get(scheme)
        return port is not None and port in self.ports

    def check(self, value: str) -> str | None:
        """None when `value` is an allowed URL; otherwise a short reason (never echoing the URL)."""
        try:
            parsed = parse_url(value)
        except UrlError as error:
            return str(error)
        if parsed.scheme not in self.schemes:
            return f"scheme '{parsed.scheme}' is not one of {', '.join(sorted(self.schemes))}"
        if not self.host_allowed(parsed.host):
            return f"host '{str(parsed.host)[:80]}' is not allowed"
        if not self.port_allowed(parsed.scheme, parsed.port):
            shown = "no known port" if parsed.port is None else f"port {parsed.port}"
            return f"{shown} is not allowed for {parsed.scheme}"
        return None


def _string_list(spec: Mapping[str, Any], key: str, default: Sequence[str] | None) -> list[str]:
    value = spec.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise UrlError(f"url.{key} must be a non-empty list of strings")
    return list(value)


def _port_list(spec: Mapping[str, Any]) -> frozenset[int] | None:
    value = spec.get("ports")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    ok = isinstance(value, list | tuple) and value
    if not ok or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value):
        raise UrlError("url.ports must be a non-empty list of port numbers (1-65535)")
    return frozenset(value)


def compile_url_policy(spec: Mapping[str, Any]) -> UrlPolicy:
    """Compile `{schemes: [...] (default [https]), hosts: [...] (required), ports: [...]}` once.

    Raises UrlError (a ValueError) on an unknown key, a missing `hosts`, or an entry that is not a
    valid scheme, host, host pattern or port.
    """
    if not isinstance(spec, Mapping):
        raise UrlError("url must be a mapping with hosts (and optionally schemes, ports)")
    unknown = sorted(set(spec) - {"schemes", "hosts", "ports"})
    if unknown:
        raise UrlError(f"url has unknown key(s): {', '.join(map(str, unknown))}")
    if "hosts" not in spec:
        raise UrlError("url.hosts is required")
    schemes = _string_list(spec, "schemes", ["https"])
    for scheme in schemes:
        if not _SCHEME.fullmatch(scheme):
            raise UrlError(f"url.schemes: {scheme!r} is not a URL scheme")
    names: set[str] = set()
    suffixes: set[str] = set()
    ips: set[IPAddress] = set()
    for entry in _string_list(spec, "hosts", None):
        kind, host = _parse_listed_host(entry)
        if host.ip is not None:
            ips.add(host.ip)
        elif kind == "wildcard":
            suffixes.add("." + (host.name or ""))
        else:
            names.add(host.name or "")
    return UrlPolicy(
        schemes=frozenset(s.lower() for s in schemes),
        names=frozenset(names),
        suffixes=frozenset(suffixes),
        ips=frozenset(ips),
        ports=_port_list(spec),
    )
