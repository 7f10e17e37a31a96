"""`mcp-firewall lint`: warnings about risky or dead policy, each at the `FILE:LINE:COL` to look at.

Quiet when there is nothing to say; exit 0, or 1 with `--strict` when there are warnings. The checks
that need tool definitions (`tools.lock`, or the upstreams) skip upstreams whose tools are unknown.

| code | what it flags |
| --- | --- |
| `destructive_class` | a grant of a whole `U:destructive` class (in a rule, or in an agent's scopes) |
| `wildcard_grant` | an allow rule whose tool or prompt selector is a glob: it grants what upstreams add later |
| `unconstrained_path`, `unconstrained_url` | a granted tool's path- or URL-like argument that its rule leaves open |
| `unused_constraint` | a constraint that applies to none of the tools its rule grants (a typo, or a stale rule) |
| `grants_nothing` | an allow rule that grants no tool or prompt (nothing matches, or deny rules hide all of it) |
| `unused_scope` | a scope that no agent holds |
| `no_owner`, `expired` | an agent without an `owner`, or past its `expires` |
| `trust_annotations` | a server whose unlisted tools take their class from the upstream's own hints |
| `dead_deny` | a deny rule that applies to no agent, or a selector in it that names no advertised tool |
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.commands.common import add_config_argument, load_config, load_policy_of
from mcp_firewall.commands.explain import tool_class
from mcp_firewall.commands.offline import Definitions, report_unknown, tool_definitions
from mcp_firewall.config.model import ScopeFile
from mcp_firewall.errors import ConfigIssue
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import CompiledRule, Policy, Selector

__all__ = ["lint_policy", "register", "risky_arguments"]

BUILT_IN = "(built-in)"
_CONSTRAINING = {"within", "not_within", "url", "pattern", "not_pattern", "enum", "const", "schema", "absent"}
_PATH_WORDS = {"path", "paths", "file", "files", "filename", "filenames", "filepath", "dir", "dirs", "directory"}
_PATH_WORDS |= {"directories", "folder", "folders", "cwd", "root", "source", "destination", "dest"}
_URL_WORDS = {"url", "urls", "uri", "uris", "href", "link", "links", "endpoint", "webhook"}
_URL_FORMATS = {"uri", "iri", "uri-reference", "iri-reference"}
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def lint_policy(policy: Policy, catalog: Catalog, unknown: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Every warning for `policy` with these tool definitions, sorted by location."""
    source = policy.source or ScopeFile()
    lint = _Lint(policy, catalog, frozenset(unknown or ()), source)
    lint.agents()
    lint.scopes()
    lint.rules()
    lint.servers()
    lint.denies()
    return sorted(set(lint.issues))


@dataclass
class _Usage:
    """What one allow rule grants across the agents that hold it."""

    rule: CompiledRule
    tools: dict[str, Route]
    applied: set[str]  # argument paths of its constraints that apply to some granted tool or prompt
    live: bool = False  # some agent that holds it can be served


class _Lint:
    def __init__(self, policy: Policy, catalog: Catalog, unknown: frozenset[str], source: ScopeFile) -> None:
        self.policy, self.catalog, self.unknown, self.source = policy, catalog, unknown, source
        self.issues: list[ConfigIssue] = []

    def warn(self, location: str, code: str, message: str) -> None:
        file, line, column = _split(location)
        self.issues.append(ConfigIssue(file, line, column, code, message))

    def agents(self) -> None:
        for name, agent in self.source.agents.items():
            if not agent.owner:
                self.warn(agent.location, "no_owner", f"agent {name!r} has no `owner`: say who answers for it")
            if self.policy.agents[name].expired():
                self.warn(agent.location, "expired", f"agent {name!r} expired on {agent.expires}: renew or remove it")
            for scope in agent.scopes:
                if scope.endswith(":destructive"):
                    self.warn(agent.location, "destructive_class", _destructive(scope, self._tools_of_class(scope)))

    def scopes(self) -> None:
        held = {scope for agent in self.source.agents.values() for scope in agent.scopes}
        for name, scope in self.source.scopes.items():
            if name not in held:
                self.warn(scope.location, "unused_scope", f"scope {name!r} is held by no agent: remove it or grant it")

    def rules(self) -> None:
        for usage in self._usages().values():
            rule = usage.rule
            if rule.location == BUILT_IN:
                continue
            for selector in rule.selectors:
                if selector.klass == "destructive":
                    self.warn(rule.location, "destructive_class", _destructive(selector.text, self._matching(selector)))
                elif selector.glob is not None and not selector.glob.is_literal:
                    found = self._matching(selector) if rule.kind == "tools" else []
                    today = f" (today: {_names(found)})" if found else ""
                    message = f"{rule.kind[:-1]} selector {selector.text!r} also grants whatever upstreams add later "
                    self.warn(rule.location, "wildcard_grant", message + f"that matches it{today}: name them instead")
            if usage.live and not self._may_be_unknown(rule):
                self._rule_usage(usage)

    def _rule_usage(self, usage: _Usage) -> None:
        rule = usage.rule
        if not usage.tools:
            what = "tool" if rule.kind == "tools" else "prompt"
            message = f"this rule grants no {what}: no advertised {what} matches it, or deny rules hide all of them"
            self.warn(rule.location, "grants_nothing", message)
            return
        args = self._source_args(rule)
        for constraint in rule.constraints:
            if constraint.path.text not in usage.applied:
                granted = _names(list(usage.tools))
                message = f"`{constraint.path.text}` applies to none of the tools this rule grants ({granted}): "
                message += "none declares it"
                self.warn(args.get(constraint.path.text, rule.location), "unused_constraint", message)
        if rule.kind == "tools":
            self._open_arguments(rule, usage.tools)

    def _open_arguments(self, rule: CompiledRule, tools: Mapping[str, Route]) -> None:
        constrained = {c.path.text for c in rule.constraints if _CONSTRAINING & set(c.spec)}
        open_args: dict[tuple[str, str], list[str]] = {}
        for name, route in sorted(tools.items()):
            for path, kind in risky_arguments(route.definition.get("inputSchema")):
                if path not in constrained:
                    open_args.setdefault((kind, path), []).append(name)
        for (kind, path), names in sorted(open_args.items()):
            fix = "within: [...]" if kind == "path" else "url: {hosts: [...]}"
            message = f"{kind}-like argument `{path}` is unconstrained for {_names(names)}: add `{path}: {{{fix}}}`"
            self.warn(rule.location, f"unconstrained_{kind}", message)

    def servers(self) -> None:
        for upstream, server in self.source.servers.items():
            if not server.trust_annotations:
                continue
            routes = [route for route in self.catalog.tools.values() if route.upstream == upstream]
            found = [(route.name, tool_class(self.policy, route)) for route in routes]
            trusted = [f"{name} ({klass.klass})" for name, klass in found if klass.source == "annotations"]
            today = f" (today: {_names(trusted)})" if trusted else ""
            message = f"the upstream's own hints, which it may get wrong, classify {upstream}'s unlisted tools{today}"
            self.warn(server.location, "trust_annotations", message + ": list them under read, write or destructive")

    def denies(self) -> None:
        compiled = {deny.location: deny for agent in self.policy.agents.values() for deny in agent.denies}
        for written in self.source.deny:
            rule = compiled.get(written.location)
            if rule is None:
                agents = ", ".join(written.agents)
                self.warn(written.location, "dead_deny", f"this deny rule applies to no agent (agents: [{agents}])")
                continue
            for selector in rule.tools:
                exact = selector.klass is not None or (selector.glob is not None and selector.glob.is_literal)
                if exact and not self._matching(selector) and not self._owner_unknown(selector):
                    message = f"{selector.text!r} names no tool that any upstream advertises, so it never matches"
                    self.warn(written.location, "dead_deny", message)

    # -- helpers -----------------------------------------------------------------------------------

    def _usages(self) -> dict[tuple[str, str], _Usage]:
        """Each allow rule that some agent holds, and what it grants across those agents."""
        usages: dict[tuple[str, str], _Usage] = {}
        for name, agent in self.policy.agents.items():
            live = self.policy.refusal(name) is None
            for rule in agent.rules:
                if rule.kind != "resources":
                    usage = usages.setdefault((rule.scope, rule.location), _Usage(rule, {}, set()))
                    usage.live = usage.live or live
            if not live:
                continue
            view = PolicyView(self.policy, name, self.catalog)
            for exposed, grant in [*view.tools_granted.items(), *view.prompts_granted.items()]:
                for rule, constraints in grant.rules:
                    usage = usages[(rule.scope, rule.location)]
                    usage.tools[exposed] = grant.route
                    usage.applied.update(c.path.text for c in constraints)
        return usages

    def _matching(self, selector: Selector) -> list[str]:
        return [
            name
            for name, route in self.catalog.tools.items()
            if selector.selects(name, route.upstream, tool_class(self.policy, route).klass)
        ]

    def _tools_of_class(self, scope: str) -> list[str]:
        """The tools a built-in `U:destructive` scope grants."""
        upstream = scope.partition(":")[0]
        return self._matching(Selector(scope, upstream=upstream, klass="destructive"))

    def _may_be_unknown(self, rule: CompiledRule) -> bool:
        return any(self._owner_unknown(selector) for selector in rule.selectors)

    def _owner_unknown(self, selector: Selector) -> bool:
        """Whether tools of an upstream whose definitions are unknown could match `selector`."""
        if selector.upstream is not None:
            return selector.upstream in self.unknown
        return any(selector.text.startswith((f"{u}__", "*")) for u in self.unknown)

    def _source_args(self, rule: CompiledRule) -> dict[str, str]:
        """Where each constraint of `rule` was written (argument path → FILE:LINE:COL)."""
        scope = self.source.scopes.get(rule.scope)
        written = next((r for r in scope.allow if r.location == rule.location), None) if scope else None
        return {path: constraint.location for path, constraint in written.args.items()} if written else {}


def _names(names: list[str], shown: int = 6) -> str:
    """`a, b, c` sorted, at most `shown` of them, then `and N more`."""
    ordered = sorted(names)
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return ", ".join(ordered[:shown]) + more


def _destructive(scope: str, tools: list[str]) -> str:
    today = f" (today: {_names(tools)})" if tools else ""
    return f"{scope} grants every destructive tool of {scope.partition(':')[0]}{today}, and any it adds: name them"


def _split(location: str) -> tuple[str, int, int]:
    file, line, column = location.rsplit(":", 2)
    return file, int(line), int(column)


def risky_arguments(schema: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(argument path, "path" | "url") for each string argument whose name or format says what it holds."""
    if not isinstance(schema, Mapping) or depth > 3:
        return
    properties = schema.get("properties")
    for name, child in properties.items() if isinstance(properties, Mapping) else ():
        if not isinstance(child, Mapping):
            continue
        path = f"{prefix}{name}"
        items = child.get("items")
        if child.get("type") == "array" and isinstance(items, Mapping):
            path, child = f"{path}[*]", items
        kind = _kind(name, child)
        if kind is not None:
            yield path, kind
        yield from risky_arguments(child, f"{path}.", depth + 1)


def _kind(name: str, schema: Mapping[str, Any]) -> str | None:
    if schema.get("type") not in (None, "string") and not isinstance(schema.get("type"), list):
        return None
    words = [word.lower() for word in _WORD.findall(name)]
    last = words[-1] if words else ""
    if last in _URL_WORDS or schema.get("format") in _URL_FORMATS:
        return "url"
    return "path" if last in _PATH_WORDS else None


# -- command -----------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add `lint` to the `mcp-firewall` subcommands."""
    parser = commands.add_parser(
        "lint",
        help="warnings about risky or dead policy",
        description="Warn about broad grants (U:destructive, globs), path- and URL-like arguments left "
        "unconstrained, constraints and scopes that apply to nothing, ownerless or expired agents, trusted "
        "annotations and deny rules that never match. Exit 0, or 1 with --strict when there are warnings.",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    add_config_argument(parser)
    parser.set_defaults(command=_lint)


def _lint(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    definitions: Definitions = tool_definitions(config)
    report_unknown(definitions)
    issues = lint_policy(load_policy_of(config), definitions.catalog(), definitions.unknown)
    for issue in issues:
        print(issue)
    if issues:
        print(f"{len(issues)} warning{'s' if len(issues) != 1 else ''}", file=sys.stderr)
    return 1 if issues and args.strict else 0
