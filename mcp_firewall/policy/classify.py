"""Tool classification (SPEC §1 and §3): every tool is `read`, `write` or `destructive`.

Rules, in order:

1. A tool matched by entries (exact names or `*` globs) of the server's `read`, `write` and
   `destructive` lists takes that class. Matched by entries of two or more classes, it takes the most
   dangerous (destructive > write > read) and the result is `ambiguous` so that it can be reported.
   The same entry written under two classes is a configuration error: see `listing_conflicts`.
2. An unlisted tool is `destructive` (the MCP default for a tool with no annotations) ...
3. ... unless `trust_annotations: true`. Then `readOnlyHint: true` makes it `read`, and
   `readOnlyHint` false (or absent: its MCP default is false) with `destructiveHint: false` makes it
   `write`. Anything else, including hints that are not booleans, leaves it `destructive`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from mcp_firewall.policy.globs import Glob, compile_glob

__all__ = [
    "CLASSES",
    "Classification",
    "CompiledClasses",
    "ServerClasses",
    "ToolClass",
    "classify",
    "compile_classes",
    "listing_conflicts",
]

ToolClass = Literal["read", "write", "destructive"]

#: The classes from least to most dangerous.
CLASSES: tuple[ToolClass, ...] = ("read", "write", "destructive")
_RANK: Mapping[str, int] = {name: rank for rank, name in enumerate(CLASSES)}


@dataclass(frozen=True, slots=True)
class ServerClasses:
    """The classification part of one `servers:` entry. Lists are stored as tuples (hashable)."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    destructive: tuple[str, ...] = ()
    trust_annotations: bool = False

    def __post_init__(self) -> None:
        for name in CLASSES:
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))

    @classmethod
    def of(cls, source: Any) -> ServerClasses:
        """Adapt any object with `read`/`write`/`destructive`/`trust_annotations` attributes (None: defaults)."""
        if source is None:
            return cls()
        return cls(
            read=tuple(getattr(source, "read", None) or ()),
            write=tuple(getattr(source, "write", None) or ()),
            destructive=tuple(getattr(source, "destructive", None) or ()),
            trust_annotations=bool(getattr(source, "trust_annotations", False)),
        )

    def entries(self) -> Iterable[tuple[ToolClass, str]]:
        """Every (class, entry) as written."""
        for name in CLASSES:
            for entry in getattr(self, name):
                yield name, entry


class Classification(NamedTuple):
    """A tool's class; `ambiguous` when entries of two classes matched; `source` says how it was decided:
    `name` (listed by exact name), `glob` (by glob), `conflict` (two classes matched), `annotations`
    (trusted hints) or `default` (unlisted: destructive)."""

    klass: ToolClass
    ambiguous: bool
    source: str


@dataclass(frozen=True, slots=True)
class CompiledClasses:
    """A server's class lists compiled for lookups: exact names in a dict, globs in a list."""

    exact: Mapping[str, frozenset[ToolClass]]
    globs: tuple[tuple[ToolClass, Glob], ...]
    trust_annotations: bool
    _empty: frozenset[ToolClass] = field(default=frozenset(), repr=False)

    def matches(self, tool_name: str) -> dict[ToolClass, list[str]]:
        """Which entries of which class match `tool_name` (for reports of ambiguous classes)."""
        found: dict[ToolClass, list[str]] = {}
        for klass in self.exact.get(tool_name, self._empty):
            found.setdefault(klass, []).append(tool_name)
        for klass, glob in self.globs:
            if glob(tool_name):
                found.setdefault(klass, []).append(glob.pattern)
        return found

    def classify(self, tool_name: str, annotations: Mapping[str, Any] | None) -> Classification:
        """The class of one tool (see the module docstring)."""
        by_name = self.exact.get(tool_name, self._empty)
        by_glob = {klass for klass, glob in self.globs if glob(tool_name)}
        listed = by_name | by_glob
        if listed:
            klass = max(listed, key=_RANK.__getitem__)
            if len(listed) > 1:
                return Classification(klass, True, "conflict")
            return Classification(klass, False, "name" if by_name else "glob")
        if self.trust_annotations:
            return _from_annotations(annotations)
        return Classification("destructive", False, "default")


def _from_annotations(annotations: Mapping[str, Any] | None) -> Classification:
    hints = annotations if isinstance(annotations, Mapping) else {}
    read_only = hints.get("readOnlyHint", False)
    destructive = hints.get("destructiveHint", True)
    if read_only is True:
        return Classification("read", False, "annotations")
    if read_only is False and destructive is False:
        return Classification("write", False, "annotations")
    return Classification("destructive", False, "annotations" if annotations else "default")


@lru_cache(maxsize=256)
def compile_classes(server: ServerClasses) -> CompiledClasses:
    """Compile a server's lists once (cached per distinct ServerClasses value)."""
    exact: dict[str, set[ToolClass]] = {}
    globs: list[tuple[ToolClass, Glob]] = []
    for klass, entry in server.entries():
        glob = compile_glob(entry)
        if glob.is_literal:
            exact.setdefault(entry, set()).add(klass)
        else:
            globs.append((klass, glob))
    return CompiledClasses(
        exact={name: frozenset(classes) for name, classes in exact.items()},
        globs=tuple(globs),
        trust_annotations=server.trust_annotations,
    )


def classify(
    tool_name: str, annotations: Mapping[str, Any] | None, server_policy: ServerClasses | None
) -> Classification:
    """`(klass, ambiguous, source)` of `tool_name` under `server_policy` (None: nothing listed, no trust)."""
    return compile_classes(server_policy or ServerClasses()).classify(tool_name, annotations)


def listing_conflicts(server: ServerClasses) -> list[str]:
    """The entries written under two or more classes (SPEC: "a tool listed under two is an error").

    Overlaps that only show when a concrete tool name arrives (a name under `read` that a glob under
    `destructive` also matches) are not errors: `classify` resolves them to the more dangerous class
    and marks them ambiguous.
    """
    seen: dict[str, list[ToolClass]] = {}
    for klass, entry in server.entries():
        if klass not in seen.setdefault(entry, []):
            seen[entry].append(klass)
    return [
        f"{entry!r} is listed under both {' and '.join(classes)}" for entry, classes in seen.items() if len(classes) > 1
    ]
