"""One agent's view of a catalog: what it sees, and the decision for each of its requests (SPEC §4).

Built once per catalog change or policy reload. The same predicate fills the lists and decides the
calls, so an agent can call exactly what it is shown. Deciding a call is a dictionary lookup, the
tool's `inputSchema` validator (compiled once per definition) and the rules' compiled constraints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import SchemaError

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.policy.classify import ToolClass
from mcp_firewall.policy.compile import CompiledAgent, CompiledRule, Policy
from mcp_firewall.policy.constraints import Failure, narrow_schema
from mcp_firewall.policy.decision import HIDDEN, Decision

__all__ = ["Grant", "PolicyView", "input_validator"]

_NO_AGENT = CompiledAgent("", (), (), False, None, None)


@lru_cache(maxsize=4096)
def _validator_for(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema)


def input_validator(schema: Mapping[str, Any] | None) -> Any:
    """A compiled validator for a tool's inputSchema (cached per distinct schema); None if unusable."""
    return _validator_for(json.dumps(schema or {"type": "object"}, sort_keys=True))


@dataclass(frozen=True)
class Grant:
    """A tool or prompt the agent may use, and the rules that select it."""

    route: Route
    klass: ToolClass | None
    rules: tuple[tuple[CompiledRule, tuple[Any, ...]], ...]  # (rule, constraints that apply to this tool)
    validator: Any = None
    declared: frozenset[str] | None = None  # None: undeclared arguments are allowed by the schema
    exposed: Mapping[str, Any] | None = None
    unusable_schema: bool = False  # the tool's inputSchema is not a valid JSON Schema: every call is denied


class PolicyView:
    """Implements `AgentView` for a compiled `Policy`."""

    def __init__(self, policy: Policy, agent: str, catalog: Catalog) -> None:
        self._policy = policy
        self._agent = policy.agents.get(agent, _NO_AGENT)
        self._refused = policy.refusal(agent) is not None
        self._catalog = catalog
        self.tools_granted: dict[str, Grant] = {}
        self.prompts_granted: dict[str, Grant] = {}
        self.hidden_reasons: dict[str, str] = {}
        if not self._refused:
            self._grant_tools()
            self._grant_prompts()

    # -- building ------------------------------------------------------------------------------

    def _grant_tools(self) -> None:
        for exposed, route in self._catalog.tools.items():
            classes = self._policy.classes(route.upstream)
            klass = classes.classify(route.name, route.definition.get("annotations")).klass
            denied = self._deny_reason(exposed, route.upstream, klass, "tools")
            rules = [r for r in self._agent.rules if r.kind == "tools" and r.selects(exposed, route.upstream, klass)]
            if denied is not None or not rules:
                self.hidden_reasons[exposed] = denied or "no allow rule of the agent's scopes selects it"
                if denied is None and self._agent.shadow:
                    self.tools_granted[exposed] = _grant(route, klass, (), shadow_only=True)
                continue
            self.tools_granted[exposed] = _grant(route, klass, rules)

    def _grant_prompts(self) -> None:
        for exposed, route in self._catalog.prompts.items():
            denied = self._deny_reason(exposed, route.upstream, None, "prompts")
            rules = [r for r in self._agent.rules if r.kind == "prompts" and r.selects(exposed, route.upstream, "read")]
            if denied is None and rules:
                self.prompts_granted[exposed] = _grant(route, None, rules, prompt=True)

    def _deny_reason(self, exposed: str, upstream: str, klass: ToolClass | None, kind: str) -> str | None:
        for deny in self._agent.denies:
            selectors = deny.tools if kind == "tools" else deny.prompts
            if any(s.selects(exposed, upstream, klass or "read") for s in selectors):
                return deny.reason
        return None

    # -- AgentView ------------------------------------------------------------------------------

    def _live(self) -> bool:
        return not self._refused and not self._agent.expired()

    def tools(self) -> list[dict[str, Any]]:
        if not self._live():
            return []
        return [dict(grant.exposed or grant.route.as_exposed()) for grant in self.tools_granted.values()]

    def check_tool(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]:
        grant = self.tools_granted.get(name) if self._live() else None
        if grant is None:
            return HIDDEN, None
        return self._decide(grant, arguments), grant.route

    def prompts(self) -> list[dict[str, Any]]:
        if not self._live():
            return []
        return [grant.route.as_exposed() for grant in self.prompts_granted.values()]

    def check_prompt(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]:
        grant = self.prompts_granted.get(name) if self._live() else None
        if grant is None:
            return HIDDEN, None
        return self._decide(grant, arguments), grant.route

    def resources(self) -> list[dict[str, Any]]:
        if not self._live():
            return []
        return [dict(r.definition) for uri, r in self._catalog.resources.items() if self._uri_decision(uri).forwarded]

    def templates(self) -> list[dict[str, Any]]:
        if not self._live():
            return []
        return [dict(t.definition) for t in self._catalog.templates if self._template_granted(str(t.template))]

    def check_resource(self, uri: str) -> tuple[Decision, str | None]:
        found = self._catalog.route_uri(uri) if self._live() else None
        if found is None:
            return HIDDEN, None
        decision = self._uri_decision(uri)
        return (decision, found[0]) if decision.forwarded else (HIDDEN, None)

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, grant: Grant, arguments: Mapping[str, Any]) -> Decision:
        try:
            decision = self._evaluate(grant, arguments)
        except Exception as exc:  # fail closed: a bug in a check denies, it never allows
            decision = Decision("deny", reason=f"the policy could not evaluate this call ({exc.__class__.__name__})")
        if decision.outcome == "deny" and (self._agent.shadow or decision.scope == "(shadow)"):
            return replace(decision, outcome="shadow-deny")
        return decision

    def _evaluate(self, grant: Grant, arguments: Mapping[str, Any]) -> Decision:
        if not isinstance(arguments, Mapping):
            return Decision("deny", reason="arguments must be a JSON object", constraint="inputSchema")
        if grant.unusable_schema:
            return Decision(
                "deny",
                reason="the tool's inputSchema is not a valid JSON Schema, so no call to it can be checked",
                constraint="inputSchema",
            )
        if grant.declared is not None:  # first, so that the denial names the undeclared argument
            for key in arguments:
                if key not in grant.declared:
                    return Decision(
                        "deny",
                        reason=f"argument {key!r} is not declared by the tool's inputSchema",
                        argument=key,
                        constraint="inputSchema",
                    )
        if grant.validator is not None and not grant.validator.is_valid(arguments):
            return _schema_denial(next(iter(grant.validator.iter_errors(arguments))), arguments)
        if not grant.rules:
            return Decision("deny", reason="no allow rule of the agent's scopes selects this tool")
        first: tuple[CompiledRule, Failure] | None = None
        for rule, constraints in grant.rules:
            failure = next((f for c in constraints if (f := c.check(arguments)) is not None), None)
            if failure is None:
                return Decision("allow", scope=rule.scope, rule=rule.location)
            first = first or (rule, failure)
        assert first is not None
        rule, failure = first
        scope = "(shadow)" if all(r.shadow for r, _ in grant.rules) else rule.scope
        return Decision("deny", failure.message, scope, rule.location, failure.argument, failure.constraint)

    def _uri_decision(self, uri: str) -> Decision:
        for deny in self._agent.denies:
            if any(glob(uri) for glob in deny.resources):
                return Decision("hidden", reason=deny.reason, rule=deny.location)
        for rule in self._agent.rules:
            if rule.kind == "resources" and rule.selects_uri(uri):
                return Decision("allow", scope=rule.scope, rule=rule.location)
        return HIDDEN

    def _template_granted(self, template: str) -> bool:
        literal = template.split("{", 1)[0]
        for rule in self._agent.rules:
            if rule.kind != "resources":
                continue
            for glob in rule.uri_globs:
                prefix = glob.pattern.split("*", 1)[0]
                if literal.startswith(prefix) or prefix.startswith(literal):
                    return True
        return False


def _grant(
    route: Route,
    klass: ToolClass | None,
    rules: list[CompiledRule] | tuple[()],
    *,
    shadow_only: bool = False,
    prompt: bool = False,
) -> Grant:
    definition = route.definition
    if prompt:
        declared_names = {a.get("name") for a in definition.get("arguments") or () if isinstance(a, dict)}
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: {} for name in declared_names if isinstance(name, str)},
        }
        validator = None
    else:
        raw = definition.get("inputSchema")
        schema = raw if isinstance(raw, dict) else {"type": "object"}
        validator = input_validator(schema)
    applied = tuple((rule, tuple(c for c in rule.constraints if c.applies_to(schema))) for rule in rules)
    declared = _declared(schema)
    exposed = None if prompt or shadow_only else _narrowed(route, schema, applied)
    return Grant(route, klass, applied, validator, declared, exposed, unusable_schema=not prompt and validator is None)


def _schema_denial(error: Any, arguments: Mapping[str, Any]) -> Decision:
    """A denial for arguments that fail the tool's inputSchema, naming the argument where one is at fault."""
    path = [str(p) for p in error.absolute_path]
    if not path and error.validator == "required" and isinstance(error.validator_value, list):
        path = [str(name) for name in error.validator_value if name not in arguments][:1]
    where = ".".join(path) or "(arguments)"
    return Decision(
        "deny",
        reason=f"arguments do not match the tool's inputSchema at {where}: {error.message[:200]}",
        argument=where if path else None,
        constraint="inputSchema",
    )


def _declared(schema: Mapping[str, Any]) -> frozenset[str] | None:
    additional = schema.get("additionalProperties")
    if (additional is not None and additional is not False) or schema.get("patternProperties"):
        return None
    properties = schema.get("properties")
    return frozenset(properties) if isinstance(properties, dict) else frozenset()


def _narrowed(
    route: Route, schema: Mapping[str, Any], applied: tuple[tuple[CompiledRule, tuple[Any, ...]], ...]
) -> dict[str, Any]:
    """Show the agent a tighter inputSchema where the only rule that grants the tool constrains it."""
    exposed = route.as_exposed()
    if len(applied) != 1 or not applied[0][1]:
        return exposed
    properties = dict(schema.get("properties") or {})
    changed = False
    for constraint in applied[0][1]:
        text = constraint.path.text
        if "." in text or "[" in text or text not in properties:
            continue
        properties[text] = narrow_schema(properties[text], constraint.spec)
        changed = True
    if changed:
        exposed["inputSchema"] = {**schema, "properties": properties}
    return exposed
