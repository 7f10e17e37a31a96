"""Glob matchers for tool/prompt selectors and resource URIs (SPEC §3 "Globs").

* `compile_glob`: tool and prompt names. ``*`` matches any run of characters (including none);
  every other character is literal. Matching is exact and case-sensitive.
* `compile_uri_glob`: resource URIs. ``*`` matches within one path segment (never ``/``), ``**``
  matches across segments; three or more ``*`` in a row are refused as ambiguous.

URI hygiene: a wildcard must not let a URI climb out of the tree it names. A URI glob that contains a
``*`` therefore never matches a URI with a backslash or NUL, or with a segment that (percent-decoded,
up to three times) is ``.`` or ``..`` or contains ``/``, ``\\`` or NUL — e.g.
``file:///srv/docs/../etc/passwd`` or ``file:///srv/docs/%2e%2e%2Fetc`` do not match
``file:///srv/docs/**``. A glob without ``*`` matches only the identical string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["Glob", "UriGlob", "compile_glob", "compile_uri_glob", "uri_is_clean"]


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled name glob; call it with a name."""

    pattern: str
    _match: Callable[[str], bool]

    @property
    def is_literal(self) -> bool:
        """Whether the glob names exactly one string (has no `*`)."""
        return "*" not in self.pattern

    def __call__(self, name: str) -> bool:
        return self._match(name)


def compile_glob(pattern: str) -> Glob:
    """Compile a tool/prompt selector glob: `*` is any run of characters, everything else literal."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("a glob must be a non-empty string")
    parts = pattern.split("*")
    if len(parts) == 1:
        return Glob(pattern, pattern.__eq__)
    if all(part == "" for part in parts):
        return Glob(pattern, lambda name: True)
    if len(parts) == 2 and parts[1] == "":
        return Glob(pattern, lambda name: name.startswith(parts[0]))
    if len(parts) == 2 and parts[0] == "":
        return Glob(pattern, lambda name: name.endswith(parts[1]))
    regex = re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)
    return Glob(pattern, lambda name: regex.fullmatch(name) is not None)


def _decoded_forms(segment: str) -> list[str]:
    forms = [segment]
    for _ in range(3):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def uri_is_clean(uri: str) -> bool:
    """Whether no segment of `uri` is, or decodes to, a dot segment or hides a separator."""
    if "\\" in uri or "\x00" in uri:
        return False
    for segment in uri.split("/"):
        for form in _decoded_forms(segment) if "%" in segment else (segment,):
            if form in (".", "..") or "\\" in form or "\x00" in form:
                return False
            if form is not segment and "/" in form:
                return False
    return True


@dataclass(frozen=True, slots=True)
class UriGlob:
    """A compiled resource URI glob; call it with a URI."""

    pattern: str
    _regex: re.Pattern[str] | None  # None: a literal pattern

    @property
    def is_literal(self) -> bool:
        """Whether the glob names exactly one URI (has no `*`)."""
        return self._regex is None

    def __call__(self, uri: str) -> bool:
        if self._regex is None:
            return uri == self.pattern
        return self._regex.fullmatch(uri) is not None and uri_is_clean(uri)


def compile_uri_glob(pattern: str) -> UriGlob:
    """Compile a resource URI glob: `*` within one segment, `**` across segments."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("a URI glob must be a non-empty string")
    if "***" in pattern:
        raise ValueError(f"URI glob {pattern!r}: use '*' (one segment) or '**' (any depth), not '***'")
    if "*" not in pattern:
        return UriGlob(pattern, None)
    pieces: list[str] = []
    for index, chunk in enumerate(pattern.split("**")):
        if index:
            pieces.append(".*")
        pieces.append("[^/]*".join(re.escape(part) for part in chunk.split("*")))
    return UriGlob(pattern, re.compile("".join(pieces), re.DOTALL))
