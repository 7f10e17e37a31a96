"""`mcp-firewall report [--html FILE]`: every agent's effective permissions, for a reviewer.

In the terminal: one table per agent (tools with class, scope and constraints; tools a deny rule
names; resources, prompts and what upstreams may ask of its client). With `--html FILE`: one static
page (no script, no external resource) whose matrix of tools × agents a reviewer opens in a browser.
The tools are those of `tools.lock` when there is one, else those the upstreams list now.
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mcp_firewall.commands.common import UsageError, add_config_argument

if TYPE_CHECKING:
    from mcp_firewall.commands.offline import Definitions
    from mcp_firewall.config.loader import LoadedConfig
    from mcp_firewall.policy.agentview import PolicyView
    from mcp_firewall.policy.classify import ToolClass
    from mcp_firewall.policy.compile import CompiledAgent, Policy

__all__ = ["AgentReport", "Cell", "Report", "ToolRow", "build_report", "register", "render_html", "render_text"]

Status = Literal["allowed", "constrained", "shadow", "denied", "hidden", "refused"]
SYMBOLS: dict[str, str] = {
    "allowed": "✓",
    "constrained": "◐",
    "shadow": "◌",
    "denied": "✗",
    "hidden": "·",
    "refused": "—",
}
MEANING: dict[str, str] = {
    "allowed": "allowed, unconstrained",
    "constrained": "allowed where its argument constraints hold",
    "shadow": "not enforced: forwarded and recorded as shadow-deny (shadow mode)",
    "denied": "hidden by a deny rule",
    "hidden": "hidden: no allow rule selects it",
    "refused": "the agent is refused (unknown, expired or wrong environment)",
}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="each agent's effective permissions, as a table or a static HTML matrix",
        description="Print every agent's effective permissions: tools with class and constraints, resources, "
        "prompts and upstream requests. --html FILE also writes a static page with a matrix of agents x tools.",
    )
    add_config_argument(parser)
    parser.add_argument("--html", metavar="FILE", help="also write the report as one static HTML page")
    parser.add_argument("--agent", action="append", help="only this agent (repeatable)")
    parser.set_defaults(command=_report)


@dataclass(frozen=True)
class ToolRow:
    exposed: str
    upstream: str
    klass: ToolClass
    description: str


@dataclass(frozen=True)
class Cell:
    status: Status
    grants: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (scope, constraints) per granting rule
    reason: str = ""

    def summary(self) -> str:
        if self.reason:
            return self.reason
        return "; ".join(f"{scope}: {', '.join(c) or 'unconstrained'}" for scope, c in self.grants)


@dataclass
class AgentReport:
    name: str
    description: str = ""
    owner: str = ""
    mode: str = "enforce"
    expires: str = ""
    refusal: str | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    resources: list[tuple[str, str]] = field(default_factory=list)  # (URI glob, scope)
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (prompt, scope)
    upstream_requests: list[tuple[str, str]] = field(default_factory=list)  # (upstream, what it may ask)


@dataclass
class Report:
    config: str
    source: str
    tools: list[ToolRow]
    agents: list[AgentReport]
    unknown: dict[str, str]


def build_report(
    config: LoadedConfig, policy: Policy, definitions: Definitions, agents: Sequence[str] | None = None
) -> Report:
    """Decide every (agent, tool) pair with the policy the firewall runs, over the catalog of `definitions`."""
    from mcp_firewall.policy.agentview import PolicyView

    catalog = definitions.catalog()
    rows = []
    for exposed, route in sorted(catalog.tools.items(), key=lambda item: (item[1].upstream, item[0])):
        klass = policy.classes(route.upstream).classify(route.name, route.definition.get("annotations")).klass
        rows.append(ToolRow(exposed, route.upstream, klass, str(route.definition.get("description") or "")))
    names = list(agents) if agents else sorted(policy.agents)
    if unknown := [name for name in names if name not in policy.agents]:
        raise UsageError(f"--agent {unknown[0]!r} is not defined in any scope file")
    reports = []
    for name in names:
        compiled = policy.agents[name]
        agent = AgentReport(
            name,
            compiled.description or "",
            compiled.owner or "",
            "shadow" if compiled.shadow else "enforce",
            datetime.fromtimestamp(compiled.expires_at, UTC).isoformat() if compiled.expires_at else "",
            policy.refusal(name),
        )
        view = PolicyView(policy, name, catalog)
        for row in rows:
            agent.cells[row.exposed] = _cell(agent, compiled, view, row)
        _other_grants(agent, compiled, view, policy, config)
        reports.append(agent)
    return Report(str(config.path), definitions.source, rows, reports, dict(definitions.unknown))


def _cell(agent: AgentReport, compiled: CompiledAgent, view: PolicyView, row: ToolRow) -> Cell:
    if agent.refusal is not None:
        return Cell("refused", reason=agent.refusal)
    grant = view.tools_granted.get(row.exposed)
    if grant is None:
        for deny in compiled.denies:
            if any(selector.selects(row.exposed, row.upstream, row.klass) for selector in deny.tools):
                return Cell("denied", reason=f"{deny.reason}; {_file_and_line(deny.location)}")
        return Cell("hidden")
    if not grant.rules:
        return Cell("shadow", reason="no allow rule selects it; the agent is in shadow mode")
    grants = tuple((rule.scope, tuple(c.describe() for c in constraints)) for rule, constraints in grant.rules)
    if all(rule.shadow for rule, _ in grant.rules):
        return Cell("shadow", grants)
    enforced = [constraints for rule, constraints in grant.rules if not rule.shadow]
    return Cell("allowed" if any(not constraints for constraints in enforced) else "constrained", grants)


def _file_and_line(location: str) -> str:
    """`FILE:LINE:COL` → `FILE:LINE`, what a reviewer opens."""
    head, _, column = location.rpartition(":")
    return head if column.isdigit() and head.rpartition(":")[2].isdigit() else location


def _other_grants(
    agent: AgentReport, compiled: CompiledAgent, view: PolicyView, policy: Policy, config: LoadedConfig
) -> None:
    if agent.refusal is not None:
        return
    for rule in compiled.rules:
        if rule.kind == "resources":
            agent.resources += [(glob.pattern, rule.scope) for glob in rule.uri_globs]
    for name, grant in sorted(view.prompts_granted.items()):
        agent.prompts.append((name, ", ".join(sorted({rule.scope for rule, _ in grant.rules})) or "shadow mode"))
    for upstream in config.firewall.upstreams:
        rules = policy.servers.get(upstream)
        if rules is None:
            continue
        allowed = [name for name, on in (("sampling", rules.sampling), ("elicitation", rules.elicitation)) if on]
        if rules.roots == "allow":
            allowed.append("roots (the client's)")
        elif isinstance(rules.roots, tuple):
            allowed.append("roots (fixed: " + ", ".join(rules.roots) + ")")
        if allowed:
            agent.upstream_requests.append((upstream, ", ".join(allowed)))


# -- the terminal ------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    from mcp_firewall.commands.report_common import columns

    lines = [f"Effective permissions in {report.config} (tools from {report.source})"]
    for upstream, why in sorted(report.unknown.items()):
        lines.append(f"  upstream {upstream!r} could not be reached: its tools are unknown ({why})")
    for agent in report.agents:
        lines += ["", _agent_heading(agent)]
        if agent.refusal is not None:
            lines.append(f"  refused: {agent.refusal}")
            continue
        rows: list[tuple[str, ...]] = [("TOOL", "CLASS", "SCOPE", "CONSTRAINTS")]
        denied: list[str] = []
        for tool in report.tools:
            cell = agent.cells[tool.exposed]
            if cell.status == "denied":
                denied.append(f"{tool.exposed} ({cell.reason})")
            elif cell.status == "shadow" and not cell.grants:
                rows.append((tool.exposed, tool.klass, "(not granted)", "shadow-deny"))
            for index, (scope, constraints) in enumerate(cell.grants):
                shown = scope + (" (shadow)" if cell.status == "shadow" else "")
                first = (tool.exposed, tool.klass) if index == 0 else ("", "")
                rows.append((*first, shown, "; ".join(constraints) or "unconstrained"))
        lines += columns(rows, indent="  ") if len(rows) > 1 else ["  no tools"]
        lines += _listing("denied", denied)
        lines += _listing("resources", [f"{glob} ({scope})" for glob, scope in agent.resources])
        lines += _listing("prompts", [f"{prompt} ({scope})" for prompt, scope in agent.prompts])
        lines += _listing("upstream requests", [f"{upstream}: {what}" for upstream, what in agent.upstream_requests])
    return "\n".join(lines)


def _agent_heading(agent: AgentReport) -> str:
    facts = [f"owner {agent.owner}" if agent.owner else "no owner", agent.mode]
    if agent.expires:
        facts.append(f"expires {agent.expires}")
    description = f" — {agent.description}" if agent.description else ""
    return f"agent {agent.name}{description} ({', '.join(facts)})"


def _listing(title: str, items: list[str]) -> list[str]:
    return [f"  {title}: " + ("; ".join(items) if items else "none")]


# -- the HTML page ------------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}.meta{color:#5b6472}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #d5dae1;padding:.25rem .5rem;text-align:left}
thead th{background:#f3f5f8;position:sticky;top:0}#matrix td.cell{text-align:center;min-width:5rem}
tr.upstream th{background:#e9edf3}.read{color:#176f2c}.write{color:#8a5a00}.destructive{color:#b3261e}
.allowed{background:#dff3e3}.constrained{background:#fff4cc}.shadow{background:#e6e9ff}
.denied{background:#fbdcdc}.hidden{color:#98a1ad}.refused{background:#eee;color:#777}
.legend span{display:inline-block;margin-right:1rem;padding:0 .4rem}code{font-size:.95em}
"""


def render_html(report: Report, generated: datetime | None = None) -> str:
    """The report as one static page: a matrix of tools (rows) × agents (columns), then each agent's details."""
    esc = html.escape
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    head = "".join(
        f'<th scope="col" data-agent="{esc(a.name)}">{esc(a.name)}<br><small>{esc(a.mode)}</small></th>'
        for a in report.agents
    )
    body: list[str] = []
    upstream = None
    for tool in report.tools:
        if tool.upstream != upstream:
            upstream = tool.upstream
            body.append(f'<tr class="upstream"><th colspan="{len(report.agents) + 2}">{esc(upstream)}</th></tr>')
        cells = "".join(_matrix_cell(agent.name, agent.cells[tool.exposed]) for agent in report.agents)
        body.append(
            f'<tr data-tool="{esc(tool.exposed)}"><th scope="row" title="{esc(tool.description)}">'
            f'<code>{esc(tool.exposed)}</code></th><td class="{esc(tool.klass)}">{esc(tool.klass)}</td>{cells}</tr>'
        )
    legend = "".join(f'<span class="{s}">{SYMBOLS[s]} {esc(m)}</span>' for s, m in MEANING.items())
    unknown = "".join(f"<li>{esc(u)}: {esc(why)}</li>" for u, why in sorted(report.unknown.items()))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>mcp-firewall report</title><style>{_STYLE}</style></head><body>"
        "<h1>mcp-firewall: effective permissions</h1>"
        f'<p class="meta">{esc(report.config)} · tools from {esc(report.source)} · generated {when}</p>'
        + (
            f"<p>Upstreams that could not be reached (their tools are unknown):</p><ul>{unknown}</ul>"
            if unknown
            else ""
        )
        + f'<h2>Agents × tools</h2><p class="legend">{legend}</p>'
        f'<table id="matrix"><thead><tr><th scope="col">Tool</th><th scope="col">Class</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        + "".join(_agent_section(agent, report.tools) for agent in report.agents)
        + "</body></html>\n"
    )


def _matrix_cell(agent: str, cell: Cell) -> str:
    esc = html.escape
    return (
        f'<td class="cell {cell.status}" data-agent="{esc(agent)}" data-status="{cell.status}" '
        f'title="{esc(cell.summary())}">{SYMBOLS[cell.status]}</td>'
    )


def _agent_section(agent: AgentReport, tools: Sequence[ToolRow]) -> str:
    esc = html.escape
    parts = [f'<section id="agent-{esc(agent.name)}"><h2>{esc(_agent_heading(agent))}</h2>']
    if agent.refusal is not None:
        return "".join([*parts, f"<p>Refused: {esc(agent.refusal)}</p></section>"])
    rows = []
    for tool in tools:
        cell = agent.cells[tool.exposed]
        if cell.status in ("hidden", "refused"):
            continue
        grants = "<br>".join(
            f"{esc(scope)}: {esc('; '.join(constraints) or 'unconstrained')}" for scope, constraints in cell.grants
        )
        rows.append(
            f'<tr><td><code>{esc(tool.exposed)}</code></td><td class="{esc(tool.klass)}">{esc(tool.klass)}</td>'
            f'<td class="{cell.status}">{SYMBOLS[cell.status]} {cell.status}</td>'
            f"<td>{grants or esc(cell.reason)}</td></tr>"
        )
    parts.append(
        "<table><thead><tr><th>Tool</th><th>Class</th><th>Status</th><th>Scope: constraints</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    for title, items in (
        ("Resources", [f"{glob} ({scope})" for glob, scope in agent.resources]),
        ("Prompts", [f"{prompt} ({scope})" for prompt, scope in agent.prompts]),
        ("Upstream requests", [f"{upstream}: {what}" for upstream, what in agent.upstream_requests]),
    ):
        listed = "".join(f"<li>{esc(item)}</li>" for item in items) or "<li>none</li>"
        parts.append(f"<h3>{title}</h3><ul>{listed}</ul>")
    return "".join([*parts, "</section>"])


# -- the command -------------------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from mcp_firewall.commands.common import load_config, load_policy_of
    from mcp_firewall.commands.offline import report_unknown, tool_definitions

    config = load_config(args.config)
    policy = load_policy_of(config)
    definitions = tool_definitions(config)
    report_unknown(definitions)
    report = build_report(config, policy, definitions, args.agent)
    print(render_text(report))
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
        print(f"\nwrote {args.html}")
    return 0
