"""One agent's view of a catalog: what it sees, and the decision for each of its requests (SPEC §4).

Built once per catalog change or policy reload. The same predicate fills the lists and decides the
calls, so an agent can call exactly what it is shown. Deciding a call is a dictionary lookup, the
tool's `inputSchema` validator (compiled once per definition) and the rules' compiled constraints.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import SchemaError

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.policy.classify import ToolClass
from mcp_firewall.policy.compile import CompiledAgent, CompiledRule, Policy, Selector
from mcp_firewall.policy.constraints import Failure, narrow_schema
from mcp_firewall.policy.decision import HIDDEN, Decision
from mcp_firewall.policy.fastschema import InputValidator, compile_fast

__all__ = ["Grant", "PolicyView", "input_validator"]

_NO_AGENT = CompiledAgent("", (), (), False, None, None)
_SHADOW_UNGRANTED = Decision("shadow-deny", reason="no allow rule of the agent's scopes selects it")


@lru_cache(maxsize=4096)
def _validator_for(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return InputValidator(cls(schema), compile_fast(schema))  # jsonschema, behind a fast path that only accepts


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
        shared = _shared(self._policy, self._catalog)
        denied: dict[str, str] = {}
        for deny in reversed(self._agent.denies):  # the first deny rule that selects a tool names the reason
            denied.update(dict.fromkeys(shared.tools_selected(deny, deny.tools), deny.reason))
        selecting: dict[str, list[CompiledRule]] = {}
        for rule in self._agent.rules:  # in the agent's order: the first rule that holds decides
            if rule.kind == "tools":
                for exposed in shared.tools_selected(rule, rule.selectors):
                    selecting.setdefault(exposed, []).append(rule)
        for exposed, route in self._catalog.tools.items():
            klass = shared.classes[exposed]
            reason = denied.get(exposed)
            rules = selecting.get(exposed)
            if reason is not None or not rules:
                self.hidden_reasons[exposed] = reason or "no allow rule of the agent's scopes selects it"
                if reason is None and self._agent.shadow:
                    self.tools_granted[exposed] = shared.grant(route, klass, (), shadow_only=True)
                continue
            # In shadow mode the agent sees the upstream's own schema: nothing is enforced, so nothing is narrowed.
            shadowed = self._agent.shadow or all(rule.shadow for rule in rules)
            self.tools_granted[exposed] = shared.grant(route, klass, rules, narrow=not shadowed)

    def _grant_prompts(self) -> None:
        for exposed, route in self._catalog.prompts.items():
            denied = self._deny_reason(exposed, route.upstream, None, "prompts")
            rules = [r for r in self._agent.rules if r.kind == "prompts" and r.selects(exposed, route.upstream, "read")]
            if denied is None and (rules or self._agent.shadow):
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
        if decision.outcome == "deny" and self._shadowed(grant, decision):
            return replace(decision, outcome="shadow-deny")
        return decision

    def _shadowed(self, grant: Grant, decision: Decision) -> bool:
        """A shadow agent is denied nothing it can see; a shadow scope only its own rules' denials."""
        if self._agent.shadow:
            return True
        decided_by_rules = decision.rule is not None and bool(grant.rules)
        return decided_by_rules and all(rule.shadow for rule, _ in grant.rules)

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
        return Decision("deny", failure.message, rule.scope, rule.location, failure.argument, failure.constraint)

    def _uri_decision(self, uri: str) -> Decision:
        for deny in self._agent.denies:
            if any(glob(uri) for glob in deny.resources):
                return Decision("hidden", reason=deny.reason, rule=deny.location)
        for rule in self._agent.rules:
            if rule.kind == "resources" and rule.selects_uri(uri):
                return Decision("allow", scope=rule.scope, rule=rule.location)
        return _SHADOW_UNGRANTED if self._agent.shadow else HIDDEN

    def _template_granted(self, template: str) -> bool:
        if self._agent.shadow:  # reads are forwarded unless a deny rule hides the concrete URI
            return True
        literal = template.split("{", 1)[0]
        for rule in self._agent.rules:
            if rule.kind != "resources":
                continue
            for glob in rule.uri_globs:
                prefix = glob.pattern.split("*", 1)[0]
                if literal.startswith(prefix) or prefix.startswith(literal):
                    return True
        return False


class _Shared:
    """What every agent's view of one catalog under one policy has in common, computed once and memoised:
    each tool's class, the tools each allow or deny rule selects, and the (immutable) grants themselves.

    Views are built per session and again on every list change; without this, each one would classify
    every tool and match every rule against every tool again.
    """

    def __init__(self, policy: Policy, catalog: Catalog) -> None:
        self.policy = policy
        self.catalog = catalog
        self.classes: dict[str, ToolClass] = {
            exposed: policy.classes(route.upstream).classify(route.name, route.definition.get("annotations")).klass
            for exposed, route in catalog.tools.items()
        }
        self._selected: dict[int, frozenset[str]] = {}
        self._grants: dict[tuple[Any, ...], Grant] = {}

    def tools_selected(self, owner: object, selectors: tuple[Selector, ...]) -> frozenset[str]:
        """The exposed tool names that `selectors` (of the rule or deny rule `owner`) select."""
        found = self._selected.get(id(owner))
        if found is None:
            tools = self.catalog.tools
            found = frozenset(
                exposed
                for exposed, route in tools.items()
                if any(selector.selects(exposed, route.upstream, self.classes[exposed]) for selector in selectors)
            )
            self._selected[id(owner)] = found
        return found

    def grant(
        self,
        route: Route,
        klass: ToolClass,
        rules: list[CompiledRule] | tuple[()],
        *,
        shadow_only: bool = False,
        narrow: bool = True,
    ) -> Grant:
        key = (route.exposed, tuple(id(rule) for rule in rules), shadow_only, narrow)
        found = self._grants.get(key)
        if found is None:
            found = self._grants[key] = _grant(route, klass, rules, shadow_only=shadow_only, narrow=narrow)
        return found


_SHARED: dict[tuple[int, int], _Shared] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_KEPT = 4  # (policy, catalog) pairs remembered: the current ones, and a few in flight during a change


def _shared(policy: Policy, catalog: Catalog) -> _Shared:
    key = (id(policy), id(catalog))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None or found.policy is not policy or found.catalog is not catalog:
            found = _SHARED[key] = _Shared(policy, catalog)
            while len(_SHARED) > _SHARED_KEPT:
                del _SHARED[next(iter(_SHARED))]
        return found


def _grant(
    route: Route,
    klass: ToolClass | None,
    rules: list[CompiledRule] | tuple[()],
    *,
    shadow_only: bool = False,
    prompt: bool = False,
    narrow: bool = True,
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
    exposed = _narrowed(route, schema, applied) if narrow and not (prompt or shadow_only) else None
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
