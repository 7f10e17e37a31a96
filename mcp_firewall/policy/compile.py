"""Scope files → a `Policy`: every selector, constraint and class list compiled once, at load time.

A `Policy` is immutable. Reloading builds a new one and swaps the reference; a request in flight keeps
the policy it started with.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_firewall.catalog import Catalog
from mcp_firewall.config.model import AllowRule, DenyRule, ScopeFile, ServerPolicy
from mcp_firewall.policy.classify import CLASSES, CompiledClasses, ServerClasses, ToolClass, compile_classes
from mcp_firewall.policy.constraints import CompiledConstraint, compile_constraint
from mcp_firewall.policy.decision import ALLOW, Decision
from mcp_firewall.policy.globs import Glob, UriGlob, compile_glob, compile_uri_glob

__all__ = ["CompiledAgent", "CompiledRule", "Policy", "Selector", "compile_policy"]

CLASS_SCOPES = ("read", "write", "destructive")
UPSTREAM_REQUESTS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


@dataclass(frozen=True, slots=True)
class Selector:
    """One tool or prompt selector: a glob over exposed names, or `U:class`."""

    text: str
    glob: Glob | None = None
    upstream: str | None = None
    klass: ToolClass | None = None

    def selects(self, exposed: str, upstream: str, klass: ToolClass) -> bool:
        if self.glob is not None:
            return self.glob(exposed)
        return upstream == self.upstream and klass == self.klass


@dataclass(frozen=True)
class CompiledRule:
    """One allow rule of one scope, ready to evaluate."""

    scope: str
    location: str
    kind: Literal["tools", "resources", "prompts"]
    selectors: tuple[Selector, ...] = ()
    uri_globs: tuple[UriGlob, ...] = ()
    constraints: tuple[CompiledConstraint, ...] = ()
    shadow: bool = False

    def selects(self, exposed: str, upstream: str, klass: ToolClass) -> bool:
        return any(selector.selects(exposed, upstream, klass) for selector in self.selectors)

    def selects_uri(self, uri: str) -> bool:
        return any(glob(uri) for glob in self.uri_globs)


@dataclass(frozen=True)
class CompiledDeny:
    location: str
    reason: str
    agents: tuple[Glob, ...]
    tools: tuple[Selector, ...]
    prompts: tuple[Selector, ...]
    resources: tuple[UriGlob, ...]

    def applies_to(self, agent: str) -> bool:
        return any(glob(agent) for glob in self.agents)


@dataclass(frozen=True)
class CompiledAgent:
    name: str
    rules: tuple[CompiledRule, ...]
    denies: tuple[CompiledDeny, ...]
    shadow: bool
    expires_at: float | None  # seconds since the epoch
    environments: tuple[str, ...] | None
    owner: str | None = None
    description: str | None = None
    location: str = ""

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at


@dataclass(frozen=True)
class ServerRules:
    classes: CompiledClasses
    sampling: bool = False
    elicitation: bool = False
    roots: Literal["deny", "allow"] | tuple[str, ...] = "deny"


@dataclass(frozen=True)
class Policy:
    """The compiled scope files: what the proxy asks through the `Gate` protocol."""

    agents: Mapping[str, CompiledAgent]
    servers: Mapping[str, ServerRules]
    environment: str | None = None
    upstreams: frozenset[str] = frozenset()
    source: ScopeFile | None = field(default=None, compare=False)

    def refusal(self, agent: str) -> str | None:
        """Why `agent` cannot be served at all, or None."""
        compiled = self.agents.get(agent)
        if compiled is None:
            return f"unknown agent {agent!r}: it is not defined under `agents:` in any scope file"
        if compiled.expired():
            return f"agent {agent!r} expired; its `expires` date has passed"
        if compiled.environments is not None:
            if self.environment is None:
                allowed = ", ".join(compiled.environments)
                return (
                    f"agent {agent!r} is limited to environments [{allowed}]; the firewall file sets no `environment`"
                )
            if self.environment not in compiled.environments:
                return f"agent {agent!r} is not allowed in environment {self.environment!r}"
        return None

    def view(self, agent: str, catalog: Catalog) -> Any:
        from mcp_firewall.policy.agentview import PolicyView

        return PolicyView(self, agent, catalog)

    def classes(self, upstream: str) -> CompiledClasses:
        rules = self.servers.get(upstream)
        return rules.classes if rules is not None else _DEFAULT_CLASSES

    def check_upstream_request(self, agent: str, upstream: str, method: str) -> Decision:
        rules = self.servers.get(upstream, _NO_SERVER_RULES)
        capability = UPSTREAM_REQUESTS.get(method)
        allowed = (
            (capability == "sampling" and rules.sampling)
            or (capability == "elicitation" and rules.elicitation)
            or (capability == "roots" and rules.roots == "allow")
        )
        if allowed and self.refusal(agent) is None:
            return ALLOW
        return Decision("deny", reason=f"{method} from upstream {upstream!r} is not allowed by its `servers:` entry")

    def capabilities_for(self, upstream: str, client_capabilities: Mapping[str, Any]) -> dict[str, Any]:
        """The agent client's capabilities ∩ what `servers:` allows; nothing else is offered."""
        rules = self.servers.get(upstream, _NO_SERVER_RULES)
        offered: dict[str, Any] = {}
        if rules.sampling and "sampling" in client_capabilities:
            offered["sampling"] = client_capabilities["sampling"]
        if rules.elicitation and "elicitation" in client_capabilities:
            offered["elicitation"] = client_capabilities["elicitation"]
        if isinstance(rules.roots, tuple):
            offered["roots"] = {"listChanged": False}
        elif rules.roots == "allow" and "roots" in client_capabilities:
            offered["roots"] = client_capabilities["roots"]
        return offered

    def fixed_roots(self, upstream: str) -> list[dict[str, Any]] | None:
        rules = self.servers.get(upstream, _NO_SERVER_RULES)
        if isinstance(rules.roots, tuple):
            return [{"uri": uri} for uri in rules.roots]
        return None


_DEFAULT_CLASSES = compile_classes(ServerClasses())
_NO_SERVER_RULES = ServerRules(_DEFAULT_CLASSES)


def compile_policy(scopes: ScopeFile, *, upstreams: Iterable[str], environment: str | None = None) -> Policy:
    """Compile merged scope files. The loader has already validated them; this cannot fail on valid input."""
    upstream_names = frozenset(upstreams)
    servers = {name: _server_rules(policy) for name, policy in scopes.servers.items()}
    scope_rules = {
        name: _scope_rules(name, scope.allow, scope.mode == "shadow") for name, scope in scopes.scopes.items()
    }
    for upstream in upstream_names:
        for klass in CLASSES:
            name = f"{upstream}:{klass}"
            selector = Selector(name, upstream=upstream, klass=klass)
            scope_rules[name] = (CompiledRule(name, "(built-in)", "tools", (selector,)),)
    denies = tuple(_deny(rule) for rule in scopes.deny)
    agents = {}
    for name, agent in scopes.agents.items():
        rules = tuple(rule for scope in agent.scopes for rule in scope_rules.get(scope, ()))
        expires = agent.expires_at
        agents[name] = CompiledAgent(
            name=name,
            rules=rules,
            denies=tuple(deny for deny in denies if deny.applies_to(name)),
            shadow=agent.mode == "shadow",
            expires_at=expires.timestamp() if expires is not None else None,
            environments=tuple(agent.environments) if agent.environments is not None else None,
            owner=agent.owner,
            description=agent.description,
            location=agent.location,
        )
    return Policy(agents, servers, environment, upstream_names, scopes)


def _server_rules(policy: ServerPolicy) -> ServerRules:
    roots: Literal["deny", "allow"] | tuple[str, ...] = (
        tuple(policy.roots) if isinstance(policy.roots, list) else policy.roots
    )
    return ServerRules(
        classes=compile_classes(ServerClasses.of(policy)),
        sampling=policy.sampling == "allow",
        elicitation=policy.elicitation == "allow",
        roots=roots,
    )


def _selector(text: str) -> Selector:
    upstream, _, klass = text.partition(":")
    if klass in CLASS_SCOPES and upstream and "*" not in upstream:
        return Selector(text, upstream=upstream, klass=klass)  # type: ignore[arg-type]
    return Selector(text, glob=compile_glob(text))


def _scope_rules(scope: str, allow: Iterable[AllowRule], shadow: bool) -> tuple[CompiledRule, ...]:
    rules = []
    for rule in allow:
        constraints = tuple(compile_constraint(path, constraint.spec()) for path, constraint in rule.args.items())
        if rule.kind == "resources":
            globs = tuple(compile_uri_glob(pattern) for pattern in rule.selectors)
            rules.append(CompiledRule(scope, rule.location, "resources", uri_globs=globs, shadow=shadow))
        else:
            selectors = tuple(_selector(text) for text in rule.selectors)
            rules.append(CompiledRule(scope, rule.location, rule.kind, selectors, (), constraints, shadow))
    return tuple(rules)


def _deny(rule: DenyRule) -> CompiledDeny:
    return CompiledDeny(
        location=rule.location,
        reason=rule.reason or "denied by a deny rule",
        agents=tuple(compile_glob(agent) for agent in rule.agents),
        tools=tuple(_selector(text) for text in rule.tools),
        prompts=tuple(_selector(text) for text in rule.prompts),
        resources=tuple(compile_uri_glob(pattern) for pattern in rule.resources),
    )
