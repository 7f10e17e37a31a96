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
from mcp_firewall.commands.common import add_call_arguments, load_config, load_policy_of
from mcp_firewall.commands.inspect import UNDECIDED, run_check
from mcp_firewall.commands.offline import parse_arguments, tool_definitions
from mcp_firewall.commands.report_common import Paint, closest, columns, compact_json
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.classify import Classification, ToolClass
from mcp_firewall.policy.compile import CompiledDeny, CompiledRule, Policy, Selector
from mcp_firewall.policy.decision import Decision

__all__ = [
    "ConstraintResult",
    "DenyTrace",
    "Explanation",
    "RuleTrace",
    "explain_tool",
    "hiding_deny",
    "register",
    "render",
    "tool_class",
]

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
    class_entries: Mapping[ToolClass, list[str]] | None = None  # class -> entries of `servers:` that match
    denies: tuple[DenyTrace, ...] = ()
    rules: tuple[RuleTrace, ...] = ()
    scopes: tuple[str, ...] = ()


def explain_tool(policy: Policy, catalog: Catalog, agent: str, tool: str, arguments: Mapping[str, Any]) -> Explanation:
    """The decision for `agent` calling `tool` with `arguments`, and the trace of every rule weighed."""
    decision, _ = PolicyView(policy, agent, catalog).check_tool(tool, arguments)
    compiled = policy.agents.get(agent)
    if compiled is None:
        unknown = f"{policy.refusal(agent)}{closest(agent, policy.agents)}"
        return Explanation(agent, tool, arguments, decision, refusal=unknown)
    if (refusal := policy.refusal(agent)) is not None:
        return Explanation(agent, tool, arguments, decision, refusal=refusal)
    scopes = tuple(dict.fromkeys(rule.scope for rule in compiled.rules))
    route = catalog.tools.get(tool)
    if route is None:
        why = f"no upstream advertises a tool named {tool!r}{closest(tool, catalog.tools)}"
        return Explanation(agent, tool, arguments, decision, unknown_tool=why, scopes=scopes)
    classification = tool_class(policy, route)
    klass = classification.klass
    schema = route.definition.get("inputSchema")
    denies = tuple(DenyTrace(deny, _selecting(deny.tools, route, klass)) for deny in compiled.denies)
    rules = tuple(
        _trace_rule(rule, route, klass, schema if isinstance(schema, Mapping) else None, arguments)
        for rule in compiled.rules
        if rule.kind == "tools"
    )
    entries = policy.classes(route.upstream).matches(route.name)
    return Explanation(
        agent, tool, arguments, decision, None, None, route, classification, entries, denies, rules, scopes
    )


def tool_class(policy: Policy, route: Route) -> Classification:
    """How `policy` classifies an advertised tool (its `servers:` lists, else trusted annotations, else destructive)."""
    return policy.classes(route.upstream).classify(route.name, route.definition.get("annotations"))


def hiding_deny(policy: Policy, agent: str, route: Route) -> CompiledDeny | None:
    """The first deny rule of `policy` that hides `route` from `agent`, if any."""
    compiled = policy.agents.get(agent)
    klass = tool_class(policy, route).klass
    denies = compiled.denies if compiled is not None else ()
    return next((deny for deny in denies if _selecting(deny.tools, route, klass) is not None), None)


def _selecting(selectors: tuple[Selector, ...], route: Route, klass: ToolClass) -> str | None:
    return next((s.text for s in selectors if s.selects(route.exposed, route.upstream, klass)), None)


def _trace_rule(
    rule: CompiledRule, route: Route, klass: ToolClass, schema: Mapping[str, Any] | None, arguments: Mapping[str, Any]
) -> RuleTrace:
    selector = _selecting(rule.selectors, route, klass)
    if selector is None:
        return RuleTrace(rule, None)
    results = []
    for constraint in rule.constraints:
        text = constraint.describe()
        if not constraint.applies_to(schema):
            results.append(ConstraintResult(text, "ignored", f"{route.exposed} does not declare it"))
        elif (failure := constraint.check(arguments)) is not None:
            at = f"at {failure.argument}: " if failure.argument != constraint.path.text else ""
            results.append(ConstraintResult(text, "fails", at + failure.message))
        else:
            results.append(ConstraintResult(text, "holds"))
    return RuleTrace(rule, selector, tuple(results))


# -- rendering ---------------------------------------------------------------------------------------

_SHOWN = 200  # characters of the arguments echoed back
_VERDICT_COLOUR = {"allows": "green", "fails": "red", "no match": "dim"}
_STATUS_COLOUR: dict[Status, str] = {"holds": "green", "fails": "red", "ignored": "dim"}


def render(explanation: Explanation, paint: Paint | None = None) -> str:
    """The trace, as printed after `check`'s lines: the tool's class, then every deny and tool rule weighed.

    Empty when there is nothing to weigh (the agent is refused, or no upstream advertises the tool).
    """
    paint = paint or Paint()
    e = explanation
    if e.route is None or e.refusal is not None:
        return ""
    shown = compact_json(dict(e.arguments))
    shown = shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"
    lines = [f"class:       {_class_line(e)}", f"arguments:   {shown}", ""]
    lines.append(f"deny rules for {e.agent}:" if e.denies else f"deny rules for {e.agent}: none")
    lines += columns(
        ((_deny_verdict(d, paint), d.deny.location, _selectors(d.deny.tools), _deny_reason(d)) for d in e.denies),
        indent="  ",
    )
    scopes = ", ".join(e.scopes) or "none"
    lines.append("")
    lines.append(f"tool rules of {e.agent}'s scopes ({scopes}):" if e.rules else f"tool rules of {e.agent}: none")
    lines += _rule_lines(e.rules, paint)
    return "\n".join(lines)


def _class_line(e: Explanation) -> str:
    route, found = e.route, e.classification
    assert route is not None and found is not None
    where = f"servers.{route.upstream}"
    entries = e.class_entries or {}
    how = {
        "name": f"listed under {where}.{found.klass}",
        "glob": f"matched by {', '.join(entries.get(found.klass, []))} under {where}.{found.klass}",
        "conflict": "matched under "
        + " and ".join(f"{where}.{k} ({', '.join(v)})" for k, v in sorted(entries.items()))
        + ": the more dangerous class wins",
        "annotations": f"from the upstream's annotations ({where}.trust_annotations is true)",
        "default": f"not listed under {where}, and unlisted tools are destructive",
    }[found.source]
    return f"{found.klass}: {how}"


def _selectors(selectors: tuple[Selector, ...]) -> str:
    return "[" + ", ".join(s.text for s in selectors) + "]" if selectors else "[]"


def _deny_verdict(trace: DenyTrace, paint: Paint) -> str:
    return paint("no match", "dim") if trace.selector is None else paint(f"matches by {trace.selector}", "red")


def _deny_reason(trace: DenyTrace) -> str:
    return f"hides the tool: {trace.deny.reason}" if trace.selector is not None else ""


def _rule_lines(rules: tuple[RuleTrace, ...], paint: Paint) -> list[str]:
    rows: list[list[str]] = []
    for trace in rules:
        how = f"selects it by {trace.selector}" if trace.selector else _selectors(trace.rule.selectors)
        verdict = paint(trace.verdict, _VERDICT_COLOUR[trace.verdict])
        rows.append([verdict, trace.rule.scope, trace.rule.location, how])
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
    """Add `explain` to the `mcp-firewall` subcommands."""
    parser = commands.add_parser(
        "explain",
        help="`check`, plus every rule weighed and whether it matched",
        description="Print what `check` prints, then the tool's class and every deny rule and tool rule of the "
        "agent's scopes: whether it selects the tool, and whether each of its constraints holds. Exit as check.",
    )
    add_call_arguments(parser)
    parser.set_defaults(command=_explain)


def _explain(args: argparse.Namespace) -> int:
    code = run_check(args)  # check's lines, its exit code, and its handling of every error
    if code == UNDECIDED:
        return code
    config = load_config(args.config)
    catalog = tool_definitions(config).catalog()  # reported by `check` already
    explanation = explain_tool(load_policy_of(config), catalog, args.agent, args.tool, parse_arguments(args.args))
    trace = render(explanation)
    if trace:
        print(f"\n{trace}")
    return code
