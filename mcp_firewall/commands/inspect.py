"""`mcp-firewall check` and `mcp-firewall tools`: what the policy decides for one agent, for reviewers.

    $ mcp-firewall check --agent support-bot --tool files__read_text_file --args '{"path": "/etc/passwd"}'
    decision:    deny
    agent:       support-bot
    tool:        files__read_text_file (upstream files, class read)
    scope:       docs-reader
    rule:        scopes/access.yaml:5:9
    argument:    path
    constraint:  within
    why:         path '/etc/passwd' is not within /srv/docs

    $ mcp-firewall tools --agent support-bot
    TOOL                        CLASS  SCOPE        CONSTRAINTS
    files__get_file_info        read   docs-reader  path: within ["/srv/docs"]
    ...
    time__get_current_time      read   docs-reader  unconstrained
                                       time:read    unconstrained

    7 tools visible to support-bot, 22 hidden

A tool granted by several rules has one line per rule (any one of them allows a call); a rule with
several constraints has one line per constraint (all of them must hold). Notes (unreachable
upstreams, tools two class globs claim) go to stderr.

Both decide exactly as `run` would, from the same compiled policy and the upstreams' tool definitions
(from `tools.lock` when there is one, see `offline.py`).

Exit codes. `check`: 0 allowed, 1 denied, hidden or shadow-denied (the policy would not allow it),
2 when nothing could be decided: a usage error (bad `--args`), a configuration or lock file that does
not load, or a tool whose upstream could not be reached. `tools`: 0, or 2 likewise. A broken file
never exits 1, so that `! mcp-firewall check ...` cannot pass by accident.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.commands.common import (
    UsageError,
    add_call_arguments,
    add_config_argument,
    load_config,
    load_policy_of,
)
from mcp_firewall.commands.offline import ASKED, Definitions, parse_arguments, report_unknown, tool_definitions
from mcp_firewall.config.loader import LoadedConfig
from mcp_firewall.errors import ConfigError
from mcp_firewall.policy.agentview import Grant, PolicyView
from mcp_firewall.policy.classify import ToolClass
from mcp_firewall.policy.compile import Policy
from mcp_firewall.policy.decision import Decision

__all__ = ["register", "run_check", "run_tools"]

ALLOWED, NOT_ALLOWED, UNDECIDED = 0, 1, 2
BUILT_IN = "(built-in)"


def register(commands: Any) -> None:
    """Add `check` and `tools` to the `mcp-firewall` subcommands."""
    check = commands.add_parser(
        "check",
        help="decide one tool call for an agent, and say why",
        description="Print the decision for one tool call, the scope and rule that decided, and why. "
        "Exit 0 allowed, 1 denied or hidden, 2 when nothing could be decided.",
    )
    add_call_arguments(check)
    check.set_defaults(command=run_check)

    tools = commands.add_parser(
        "tools",
        help="list the tools an agent sees, with their class and constraints",
        description="List the tools an agent sees: class (read, write, destructive), the scopes that grant "
        "them and each grant's argument constraints. A tool granted by several rules has one line per rule.",
    )
    tools.add_argument("--agent", required=True, help="the agent")
    add_config_argument(tools)
    tools.set_defaults(command=run_tools)


# ---------------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    arguments = parse_arguments(args.args)
    config, policy, definitions = _load(args.config)
    report_unknown(definitions)
    agent, tool = args.agent, args.tool
    catalog = definitions.catalog()
    view = PolicyView(policy, agent, catalog)
    decision, _ = view.check_tool(tool, arguments)
    route = catalog.tools.get(tool)
    described = f"{tool} (upstream {route.upstream}, class {_class_of(policy, route)})" if route else tool
    fields = [("decision", decision.outcome), ("agent", agent), ("tool", described)]
    unreachable = definitions.unknown_upstream_of(tool, _prefixes(config)) if route is None else None
    if decision.outcome != "hidden":
        fields.extend(_why_decided(decision, view.tools_granted.get(tool)))
    elif unreachable is not None and policy.refusal(agent) is None:
        fields[0] = ("decision", "unknown")
        fields.append(("why", f"upstream {unreachable!r} could not be reached: {definitions.unknown[unreachable]}"))
        _print_fields(fields)
        return UNDECIDED
    else:
        fields.extend(_why_hidden(policy, agent, tool, route, definitions))
    _print_fields(fields)
    return ALLOWED if decision.outcome == "allow" else NOT_ALLOWED


def _why_decided(decision: Decision, grant: Grant | None) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if decision.scope is not None:
        rules = grant.rules if grant is not None else ()
        shadow = any(rule.shadow for rule, _ in rules if (rule.scope, rule.location) == (decision.scope, decision.rule))
        lines.append(("scope", decision.scope + (" (shadow mode)" if shadow else "")))
    if decision.rule is not None:
        lines.append(("rule", _rule_text(decision.rule, decision.scope)))
    if decision.outcome == "allow":
        applied = _constraints_of(grant, decision.rule, decision.scope)
        lines.append(("constraints", "\n".join(applied) if applied else "none: the rule grants the tool outright"))
        return lines
    if decision.argument is not None:
        lines.append(("argument", decision.argument))
    if decision.constraint is not None:
        lines.append(("constraint", decision.constraint))
    why = decision.reason
    if decision.outcome == "shadow-deny":
        why += "\n(shadow mode: the firewall would forward this call and record it as shadow-deny)"
    lines.append(("why", why))
    return lines


def _why_hidden(
    policy: Policy, agent: str, tool: str, route: Route | None, definitions: Definitions
) -> list[tuple[str, str]]:
    refusal = policy.refusal(agent)
    if refusal is not None:
        return [("why", f"the agent is refused: {refusal}")]
    if route is None:
        where = "" if definitions.source == ASKED else f" in {definitions.source}"
        return [("why", f"no upstream advertises a tool named {tool!r}{where}")]
    klass = _class_of(policy, route)
    for deny in policy.agents[agent].denies:
        if any(selector.selects(tool, route.upstream, klass) for selector in deny.tools):
            return [("rule", f"{deny.location} (deny)"), ("why", deny.reason)]
    scopes = ", ".join(_agent_scopes(policy, agent)) or "none"
    return [("why", f"no allow rule of the agent's scopes ({scopes}) selects it")]


def _agent_scopes(policy: Policy, agent: str) -> list[str]:
    source = policy.source
    if source is None or agent not in source.agents:
        return []
    return list(source.agents[agent].scopes)


def _class_of(policy: Policy, route: Route) -> ToolClass:
    return policy.classes(route.upstream).classify(route.name, route.definition.get("annotations")).klass


def _rule_text(rule: str, scope: str | None) -> str:
    if rule == BUILT_IN:
        return f"built-in scope {scope}" if scope else "built-in"
    return rule


def _constraints_of(grant: Grant | None, rule: str | None, scope: str | None) -> list[str]:
    if grant is None:
        return []
    for compiled, constraints in grant.rules:
        if compiled.location == rule and compiled.scope == scope:
            return [constraint.describe() for constraint in constraints]
    return []


# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------

HEADER = ("TOOL", "CLASS", "SCOPE", "CONSTRAINTS")
NOT_GRANTED = "(not granted)"


def run_tools(args: argparse.Namespace) -> int:
    _config, policy, definitions = _load(args.config)
    report_unknown(definitions)
    agent = args.agent
    catalog = definitions.catalog()
    refusal = policy.refusal(agent)
    if refusal is not None:
        print(f"{agent} sees no tools: {refusal}")
        return 0
    view = PolicyView(policy, agent, catalog)
    visible = {tool["name"] for tool in view.tools()}
    _report_ambiguous(policy, catalog, visible)
    rows: list[tuple[str, str, str, str]] = []
    for name in sorted(visible):
        rows.extend(_tool_rows(name, view.tools_granted[name]))
    hidden = len(catalog.tools) - len(visible)
    if not rows:
        print(f"{agent} sees no tools ({hidden} hidden)")
        return 0
    _print_table([HEADER, *rows])
    print(f"\n{len(visible)} {'tool' if len(visible) == 1 else 'tools'} visible to {agent}, {hidden} hidden")
    if policy.agents[agent].shadow:
        print(f"{agent} is in shadow mode: it also sees tools {NOT_GRANTED}; their calls are forwarded as shadow-deny")
    return 0


def _tool_rows(name: str, grant: Grant) -> list[tuple[str, str, str, str]]:
    klass = grant.klass or ""
    if not grant.rules:  # listed only because the agent is in shadow mode
        return [(name, klass, NOT_GRANTED, "shadow-deny")]
    rows: list[tuple[str, str, str, str]] = []
    for rule, constraints in grant.rules:
        described = [constraint.describe() for constraint in constraints] or ["unconstrained"]
        scope = rule.scope + (" (shadow mode)" if rule.shadow else "")
        for index, text in enumerate(described):
            first_of_tool = not rows and index == 0
            rows.append(
                (name if first_of_tool else "", klass if first_of_tool else "", scope if index == 0 else "", text)
            )
    return rows


def _report_ambiguous(policy: Policy, catalog: Catalog, visible: set[str]) -> None:
    for exposed in sorted(visible):
        route = catalog.tools[exposed]
        classes = policy.classes(route.upstream)
        classification = classes.classify(route.name, route.definition.get("annotations"))
        if classification.ambiguous:
            matched = classes.matches(route.name)
            entries = "; ".join(f"{klass}: {', '.join(found)}" for klass, found in sorted(matched.items()))
            _note(f"{exposed} is listed under two classes ({entries}); it is treated as {classification.klass}")


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------


def _load(config_path: str) -> tuple[LoadedConfig, Policy, Definitions]:
    try:
        config = load_config(config_path)
        return config, load_policy_of(config), tool_definitions(config)
    except ConfigError as exc:  # nothing can be decided: exit 2, never 1 ("denied")
        raise UsageError(str(exc)) from None


def _prefixes(config: LoadedConfig) -> dict[str, bool]:
    return {name: upstream.prefix for name, upstream in config.firewall.upstreams.items()}


def _note(message: str) -> None:
    print(f"mcp-firewall: {message}", file=sys.stderr)


def _print_fields(fields: Sequence[tuple[str, str]]) -> None:
    width = len("constraints:") + 1  # the longest key: every `check` output aligns alike
    for key, value in fields:
        first, *rest = value.split("\n")
        print(f"{key + ':':<{width}}{first}".rstrip())
        for line in rest:
            print(f"{'':<{width}}{line}".rstrip())


def _print_table(rows: Iterable[Sequence[str]]) -> None:
    table = list(rows)
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
