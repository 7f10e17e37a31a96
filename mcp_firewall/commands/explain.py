"""`mcp-firewall explain --agent A --tool T [--args JSON]`: the decision, and every rule that was weighed.

The decision itself always comes from `PolicyView.check_tool`, the predicate `run` uses. The trace beside
it re-evaluates each deny rule and each tool rule of the agent's scopes for the reviewer: whether it
selects the tool (and by which selector), and for each of its constraints whether it holds, fails (and
why), or is ignored because the tool does not declare that argument.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.classify import Classification
from mcp_firewall.policy.compile import CompiledDeny, CompiledRule, Policy, Selector
from mcp_firewall.policy.decision import Decision

from .report_common import Paint, closest, columns, compact_json, short_location

__all__ = ["ConstraintResult", "DenyTrace", "Explanation", "RuleTrace", "explain_tool", "register", "render"]

Status = Literal["holds", "fails", "ignored"]


@dataclass(frozen=True)
class ConstraintResult:
    """One constraint of a rule that selects the tool: `path: keys` as written, and what became of it."""

    text: str
    status: Status
    message: str = ""


@dataclass(frozen=True)
class RuleTrace:
    """One tool rule of the agent's scopes, weighed against the tool and the arguments."""

    rule: CompiledRule
    selector: str | None  # the selector that selects the tool; None: the rule does not select it
    constraints: tuple[ConstraintResult, ...] = ()

    @property
    def verdict(self) -> Literal["allows", "fails", "no match"]:
        if self.selector is None:
            return "no match"
        return "fails" if any(c.status == "fails" for c in self.constraints) else "allows"


@dataclass(frozen=True)
class DenyTrace:
    deny: CompiledDeny
    selector: str | None  # the selector that matches the tool; None: the deny rule does not match


@dataclass(frozen=True)
class Explanation:
    agent: str
    tool: str
    arguments: Mapping[str, Any]
    decision: Decision
    refusal: str | None = None  # why the agent cannot be served at all
    unknown_tool: str | None = None  # why the tool is not in the catalog (with a suggestion)
    route: Route | None = None
    classification: Classification | None = None
    class_entries: Mapping[str, list[str]] | None = None  # class -> entries of `servers:` that match
    denies: tuple[DenyTrace, ...] = ()
    rules: tuple[RuleTrace, ...] = ()
    scopes: tuple[str, ...] = ()


def explain_tool(policy: Policy, catalog: Catalog, agent: str, tool: str, arguments: Mapping[str, Any]) -> Explanation:
    """The decision for `agent` calling `tool` with `arguments`, and the trace of every rule weighed."""
    view = PolicyView(policy, agent, catalog)
    decision, _ = view.check_tool(tool, arguments)
    refusal = policy.refusal(agent)
    compiled = policy.agents.get(agent)
    if refusal is not None or compiled is None:
        return Explanation(agent, tool, arguments, decision, refusal=(refusal or "") + closest(agent, policy.agents))
    scopes = tuple(dict.fromkeys(rule.scope for rule in compiled.rules))
    route = catalog.tools.get(tool)
    if route is None:
        why = f"no upstream advertises a tool named {tool!r}{closest(tool, catalog.tools)}"
        return Explanation(agent, tool, arguments, decision, unknown_tool=why, scopes=scopes)
    classes = policy.classes(route.upstream)
    classification = classes.classify(route.name, route.definition.get("annotations"))
    klass = classification.klass
    schema = route.definition.get("inputSchema")
    denies = tuple(DenyTrace(deny, _selecting(deny.tools, tool, route.upstream, klass)) for deny in compiled.denies)
    rules = tuple(
        _trace_rule(rule, route, klass, schema if isinstance(schema, Mapping) else None, arguments)
        for rule in compiled.rules
        if rule.kind == "tools"
    )
    return Explanation(
        agent,
        tool,
        arguments,
        decision,
        route=route,
        classification=classification,
        class_entries=classes.matches(route.name),
        denies=denies,
        rules=rules,
        scopes=scopes,
    )


def _selecting(selectors: tuple[Selector, ...], exposed: str, upstream: str, klass: Any) -> str | None:
    return next((s.text for s in selectors if s.selects(exposed, upstream, klass)), None)


def _trace_rule(
    rule: CompiledRule, route: Route, klass: Any, schema: Mapping[str, Any] | None, arguments: Mapping[str, Any]
) -> RuleTrace:
    selector = _selecting(rule.selectors, route.exposed, route.upstream, klass)
    if selector is None:
        return RuleTrace(rule, None)
    results = []
    for constraint in rule.constraints:
        text = constraint.describe()
        if not constraint.applies_to(schema):
            results.append(ConstraintResult(text, "ignored", f"{route.exposed} does not declare it"))
        elif (failure := constraint.check(arguments)) is not None:
            results.append(ConstraintResult(text, "fails", f"{failure.argument}: {failure.message}"))
        else:
            results.append(ConstraintResult(text, "holds"))
    return RuleTrace(rule, selector, tuple(results))


# -- rendering ---------------------------------------------------------------------------------------

_OUTCOME_COLOUR = {"allow": "green", "deny": "red", "hidden": "red", "shadow-deny": "yellow"}
_VERDICT_COLOUR = {"allows": "green", "fails": "red", "no match": "dim"}
_STATUS_COLOUR: dict[Status, str] = {"holds": "green", "fails": "red", "ignored": "dim"}


def render(explanation: Explanation, paint: Paint | None = None) -> str:
    """The explanation as a reviewer reads it in a terminal."""
    paint = paint or Paint()
    e = explanation
    lines = [*_decision_lines(e, paint), ""]
    if e.refusal is not None:
        return "\n".join(lines[:-1])
    lines.append(f"agent   {e.agent}" + (f"  (scopes: {', '.join(e.scopes)})" if e.scopes else "  (no scopes)"))
    if e.route is None:
        lines.append(f"tool    {e.tool}: {e.unknown_tool}")
        return "\n".join(lines)
    lines.append(f"tool    {e.tool}: {_tool_line(e)}")
    lines.append(f"args    {compact_json(dict(e.arguments))}")
    lines += ["", f"deny rules ({len(e.denies)}):"]
    lines += columns(
        ((short_location(d.deny.location), _selectors(d.deny.tools), _deny_verdict(d, paint)) for d in e.denies),
        indent="  ",
    ) or ["  (none apply to this agent)"]
    lines += ["", f"tool rules of the agent's scopes ({len(e.rules)}):"]
    lines += _rule_lines(e.rules, paint) or ["  (none)"]
    return "\n".join(lines)


def _decision_lines(e: Explanation, paint: Paint) -> list[str]:
    d = e.decision
    head = paint(d.outcome, _OUTCOME_COLOUR.get(d.outcome, "bold"))
    if e.refusal is not None:
        return [f"{head}: agent refused: {e.refusal}"]
    if e.unknown_tool is not None:
        return [f"{head}: {e.unknown_tool}"]
    if d.outcome == "allow":
        return [f"{head}: allowed by scope {d.scope}, rule {short_location(d.rule or '?')}"]
    lines = [f"{head}: {d.reason}"]
    if d.rule:
        lines.append(f"  {'scope ' + d.scope + ', ' if d.scope else ''}rule {short_location(d.rule)}")
    return lines


def _tool_line(e: Explanation) -> str:
    route, found = e.route, e.classification
    assert route is not None and found is not None
    where = f"servers.{route.upstream}"
    entries = e.class_entries or {}
    how = {
        "name": f"listed under {where}.{found.klass}",
        "glob": f"{where}.{found.klass} lists {', '.join(entries.get(found.klass, []))}",
        "conflict": "matched under "
        + " and ".join(f"{where}.{k} ({', '.join(v)})" for k, v in entries.items())
        + ": the more dangerous class wins",
        "annotations": f"from the upstream's annotations ({where}.trust_annotations: true)",
        "default": f"not listed under {where}: unlisted tools are destructive",
    }[found.source]
    return f"{route.upstream}'s {route.name}, class {found.klass} ({how})"


def _selectors(selectors: tuple[Selector, ...]) -> str:
    return "[" + ", ".join(s.text for s in selectors) + "]" if selectors else "[]"


def _deny_verdict(trace: DenyTrace, paint: Paint) -> str:
    if trace.selector is None:
        return paint("no match", "dim")
    return paint(f"matches ({trace.selector}): hides the tool", "red") + f" — {trace.deny.reason}"


def _rule_lines(rules: tuple[RuleTrace, ...], paint: Paint) -> list[str]:
    rows: list[list[str]] = []
    for trace in rules:
        how = f"selects it by {trace.selector}" if trace.selector else _selectors(trace.rule.selectors)
        verdict = paint(trace.verdict, _VERDICT_COLOUR[trace.verdict])
        rows.append([verdict, trace.rule.scope, short_location(trace.rule.location), how])
    lines = columns(rows, indent="  ")
    out: list[str] = []
    for trace, line in zip(rules, lines, strict=True):
        out.append(line)
        if trace.selector is not None and not trace.constraints:
            out.append("      (no constraints)")
        out += columns(
            (
                (c.text, paint(c.status, _STATUS_COLOUR[c.status]) + (f": {c.message}" if c.message else ""))
                for c in trace.constraints
            ),
            indent="      ",
        )
    return out


# -- command -------------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    from .common import add_config_argument

    parser = commands.add_parser("explain", help="a decision, and every rule weighed for it")
    add_config_argument(parser)
    parser.add_argument("--agent", required=True, help="the agent making the call")
    parser.add_argument("--tool", required=True, help="the tool as the agent sees it (upstream__tool)")
    parser.add_argument("--args", default="{}", help="the call's arguments, a JSON object (default {})")
    parser.set_defaults(command=_explain)


def _explain(args: argparse.Namespace) -> int:
    from . import offline
    from .common import load_config, load_policy_of

    config = load_config(args.config)
    arguments = offline.parse_arguments(args.args)
    catalog = offline.catalog_for(config)
    explanation = explain_tool(load_policy_of(config), catalog, args.agent, args.tool, arguments)
    print(render(explanation))
    return 0 if explanation.decision.outcome == "allow" else 1
