"""Checks across entries and files that pydantic cannot express; each issue points at the offending node.

- the same server policy, scope or agent defined in two files (`duplicate_definition`);
- `servers:` keys and `U:class` selectors naming no upstream of the firewall file (`unknown_upstream`);
- `U:class` selectors with a class other than read, write, destructive (`bad_selector`);
- a tool listed under two classes of one server (`tool_class_conflict`);
- agents holding scopes that are not defined (`unknown_scope`);
- deny rules naming agents that are not defined (`unknown_agent`): a typo there silently weakens a deny.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import ConfigIssue
from ._yaml import DataPath, SourceMap
from .model import ScopeFile

__all__ = ["CLASSES", "ScopeDocument", "check_scope_documents"]

CLASSES = ("read", "write", "destructive")
_SECTIONS = (("servers", "server policy"), ("scopes", "scope"), ("agents", "agent"))


@dataclass(frozen=True)
class ScopeDocument:
    """One scope file that passed model validation."""

    file: str
    model: ScopeFile
    source: SourceMap


def check_scope_documents(
    documents: Sequence[ScopeDocument], upstreams: Collection[str] | None, *, complete: bool = True
) -> list[ConfigIssue]:
    """All semantic issues. `upstreams` None skips upstream checks; `complete` False (some scope file
    failed to load) skips the checks that need every definition, to avoid reporting false dangling names."""
    issues = list(_duplicates(documents))
    scope_names = {name for doc in documents for name in doc.model.scopes}
    agent_names = {name for doc in documents for name in doc.model.agents}
    for doc in documents:
        issues.extend(_servers(doc, upstreams))
        issues.extend(_class_conflicts(doc))
        issues.extend(_selectors(doc, upstreams))
        if complete:
            issues.extend(_agent_scopes(doc, scope_names, upstreams))
            issues.extend(_deny_agents(doc, agent_names))
    return issues


def _issue(doc: ScopeDocument, path: DataPath, code: str, message: str) -> ConfigIssue:
    location = doc.source.locate_value(path) if isinstance(path[-1], int) else doc.source.locate(path)
    return ConfigIssue(location.file, location.line, location.column, code, message)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _duplicates(documents: Sequence[ScopeDocument]) -> Iterator[ConfigIssue]:
    for section, label in _SECTIONS:
        first: dict[str, str] = {}
        for doc in documents:
            for name in getattr(doc.model, section):
                here = doc.source.locate((section, name))
                if name in first:
                    message = f"{label} {name!r} is defined twice: {first[name]} and {here}"
                    yield ConfigIssue(here.file, here.line, here.column, "duplicate_definition", message)
                else:
                    first[name] = str(here)


def _servers(doc: ScopeDocument, upstreams: Collection[str] | None) -> Iterator[ConfigIssue]:
    if upstreams is None:
        return
    for name in doc.model.servers:
        if name not in upstreams:
            message = (
                f"servers: {name!r} is not an upstream of the firewall file "
                f"(upstreams: {', '.join(sorted(upstreams))}){_suggest(name, upstreams)}"
            )
            yield _issue(doc, ("servers", name), "unknown_upstream", message)


def _class_conflicts(doc: ScopeDocument) -> Iterator[ConfigIssue]:
    for server, policy in doc.model.servers.items():
        first: dict[str, DataPath] = {}
        for cls in CLASSES:
            for index, tool in enumerate(getattr(policy, cls)):
                path = ("servers", server, cls, index)
                earlier = first.setdefault(tool, path)
                if earlier[2] != cls:
                    line = doc.source.locate_value(earlier).line
                    message = (
                        f"servers.{server}: {tool!r} is listed as both {earlier[2]} (line {line}) and {cls}; "
                        f"a tool has exactly one class: keep it under one of them"
                    )
                    yield _issue(doc, path, "tool_class_conflict", message)


def _selectors(doc: ScopeDocument, upstreams: Collection[str] | None) -> Iterator[ConfigIssue]:
    for scope_name, scope in doc.model.scopes.items():
        for index, rule in enumerate(scope.allow):
            yield from _tool_selectors(doc, ("scopes", scope_name, "allow", index), rule.tools or [], upstreams)
    for index, deny in enumerate(doc.model.deny):
        yield from _tool_selectors(doc, ("deny", index), deny.tools, upstreams)


def _tool_selectors(
    doc: ScopeDocument, rule_path: DataPath, selectors: list[str], upstreams: Collection[str] | None
) -> Iterator[ConfigIssue]:
    for index, selector in enumerate(selectors):
        problem = _selector_problem(selector, upstreams)
        if problem is not None:
            yield _issue(doc, (*rule_path, "tools", index), *problem)


def _selector_problem(selector: str, upstreams: Collection[str] | None) -> tuple[str, str] | None:
    """`U:read|write|destructive` must name a known upstream and class; other selectors are names or globs."""
    upstream, colon, cls = selector.partition(":")
    if not colon:
        return None
    if cls not in CLASSES:
        if "*" in cls:
            hint = f"; to select tools by name, write {upstream}__{cls}"
        else:
            hint = _suggest(selector, [f"{upstream}:{c}" for c in CLASSES])
        message = (
            f"tool selector {selector!r}: ':' is only for class selectors {upstream}:read, {upstream}:write "
            f"or {upstream}:destructive{hint}"
        )
        return "bad_selector", message
    if upstreams is not None and upstream not in upstreams:
        message = (
            f"tool selector {selector!r} names upstream {upstream!r}, which the firewall file does not define "
            f"(upstreams: {', '.join(sorted(upstreams))}){_suggest(upstream, upstreams)}"
        )
        return "unknown_upstream", message
    return None


def _agent_scopes(
    doc: ScopeDocument, scope_names: Collection[str], upstreams: Collection[str] | None
) -> Iterator[ConfigIssue]:
    builtins = {f"{upstream}:{cls}" for upstream in upstreams or () for cls in CLASSES}
    for agent_name, agent in doc.model.agents.items():
        for index, scope in enumerate(agent.scopes):
            if scope in scope_names or scope in builtins or _unchecked_builtin(scope, upstreams):
                continue
            message = (
                f"agent {agent_name!r} holds scope {scope!r}, which is neither a defined scope nor a built-in "
                f"<upstream>:read, :write or :destructive{_suggest(scope, set(scope_names) | builtins)}"
            )
            yield _issue(doc, ("agents", agent_name, "scopes", index), "unknown_scope", message)


def _unchecked_builtin(scope: str, upstreams: Collection[str] | None) -> bool:
    """Without a firewall file, any `U:class` is taken as a built-in scope."""
    _, colon, cls = scope.partition(":")
    return upstreams is None and bool(colon) and cls in CLASSES


def _deny_agents(doc: ScopeDocument, agent_names: Collection[str]) -> Iterator[ConfigIssue]:
    for rule_index, rule in enumerate(doc.model.deny):
        for index, agent in enumerate(rule.agents):
            if any(c in agent for c in "*?[") or agent in agent_names:
                continue
            message = (
                f"deny rule names agent {agent!r}, which no scope file defines, so the rule applies to no "
                f"agent{_suggest(agent, agent_names)}"
            )
            yield _issue(doc, ("deny", rule_index, "agents", index), "unknown_agent", message)
