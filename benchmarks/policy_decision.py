"""How fast the policy compiles and decides, at the scale of a large deployment.

    .venv/bin/python benchmarks/policy_decision.py                  # 1,000 agents, 50 upstreams, 2,000 tools
    .venv/bin/python benchmarks/policy_decision.py --quick          # a tenth of the size, for a smoke run
    .venv/bin/python benchmarks/policy_decision.py --profile        # also cProfile compile and the decisions
    .venv/bin/python benchmarks/policy_decision.py --json out.json

The policy is generated (seeded, so every run measures the same one): each upstream has 40 tools of
typical shapes (read/list/search with `path`, write/edit with `path` and `content`, fetch with `url`,
run with `command`, ...), a `servers:` entry classifying them by globs (a fifth trust annotations),
and five scopes (a class grant constrained by `within`, named write grants with `within` +
`max_length`, a fetch grant with `url`, an ops glob grant with `pattern`/`enum`, a wide unconstrained
grant); agents hold 3-8 of those scopes and built-in `U:read` scopes, a few are in shadow mode; deny
rules name tool globs and agent globs.

Measured: `compile_policy` (the scope model is built first, as the loader would); building each
agent's `PolicyView` over the whole catalog (once per session and per list change, not per call; the
first view after a change also classifies every tool, for all views to share); and
`check_tool` per call with `time.perf_counter_ns`, over random (agent, tool, arguments) draws, after
every view is built: 80% draws of a tool the agent sees, with arguments that hold or break a
constraint, 20% of any tool (mostly hidden). Targets: decision p95 <= 20 us, compile <= 1 s.

Exit status 0 when the benchmark ran, whether or not the targets were met.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import percentile

from mcp_firewall.catalog import Catalog, UpstreamLists
from mcp_firewall.config.model import ScopeFile
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import compile_policy

DECISION_TARGET_US = 20.0
COMPILE_TARGET_S = 1.0

# ---------------------------------------------------------------------------------------------
# The generated deployment
# ---------------------------------------------------------------------------------------------

STRING = {"type": "string"}
PATH = {"type": "string", "description": "Absolute path"}
SHAPES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # (name prefix, properties, annotations)
    ("read", {"path": PATH, "head": {"type": "integer"}}, {"readOnlyHint": True}),
    ("list", {"path": PATH}, {"readOnlyHint": True}),
    ("search", {"path": PATH, "pattern": STRING, "excludePatterns": {"type": "array", "items": STRING}}, {}),
    ("get", {"id": {"type": "integer"}, "verbose": {"type": "boolean"}}, {"readOnlyHint": True}),
    ("stat", {"paths": {"type": "array", "items": STRING, "minItems": 1}}, {"readOnlyHint": True}),
    ("write", {"path": PATH, "content": STRING}, {"destructiveHint": True}),
    (
        "edit",
        {
            "path": PATH,
            "edits": {
                "type": "array",
                "items": {"type": "object", "properties": {"oldText": STRING, "newText": STRING}},
            },
        },
        {"destructiveHint": True},
    ),
    ("create", {"path": PATH}, {"readOnlyHint": False, "destructiveHint": False}),
    ("delete", {"path": PATH, "recursive": {"type": "boolean"}}, {"destructiveHint": True}),
    ("fetch", {"url": {"type": "string", "format": "uri"}, "max_length": {"type": "integer", "minimum": 1}}, {}),
    ("run", {"command": STRING, "mode": {"type": "string", "enum": ["dry", "check", "apply"]}}, {}),
    ("query", {"sql": STRING, "limit": {"type": "integer", "maximum": 1000}}, {"readOnlyHint": True}),
]
TOOLS_PER_UPSTREAM = 40


def make_upstreams(count: int, rng: random.Random) -> list[UpstreamLists]:
    upstreams = []
    for u in range(count):
        tools = []
        for t in range(TOOLS_PER_UPSTREAM):
            prefix, properties, annotations = SHAPES[t % len(SHAPES)]
            required = [name for name in properties if name in ("path", "url", "command", "sql", "paths", "id")]
            schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
            if rng.random() < 0.5:
                schema["additionalProperties"] = False
            tools.append(
                {
                    "name": f"{prefix}_{t:02d}",
                    "description": f"{prefix} tool number {t} of upstream {u}.",
                    "inputSchema": schema,
                    "annotations": annotations,
                }
            )
        upstreams.append(UpstreamLists(f"up{u:02d}", True, tools=tools))
    return upstreams


def make_scope_document(upstreams: list[UpstreamLists], agents: int, rng: random.Random) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    scopes: dict[str, Any] = {}
    for index, upstream in enumerate(upstreams):
        u = upstream.name
        servers[u] = {
            "read": ["read_*", "list_*", "search_*", "get_*", "stat_*", "query_*"],
            "write": ["create_*"],
            "destructive": ["write_*", "edit_*", "delete_*"],
            "trust_annotations": index % 5 == 0,
            "sampling": "allow" if index % 7 == 0 else "deny",
        }
        root = f"/srv/{u}"
        scopes[f"{u}-reader"] = {
            "allow": [
                {
                    "tools": [f"{u}:read"],
                    "args": {
                        "path": {"within": [f"{root}/docs", f"{root}/public"]},
                        "paths[*]": {"within": [f"{root}/docs"]},
                        "limit": {"max": 100, "required": False},
                    },
                }
            ]
        }
        writes = [f"{u}__write_{t:02d}" for t in range(5, TOOLS_PER_UPSTREAM, 12)]
        edits = [f"{u}__edit_{t:02d}" for t in range(6, TOOLS_PER_UPSTREAM, 12)]
        scopes[f"{u}-writer"] = {
            "allow": [
                {
                    "tools": writes + edits,
                    "args": {
                        "path": {"within": [f"{root}/drafts"], "not_within": [f"{root}/drafts/locked"]},
                        "content": {"max_length": 100_000, "required": False},
                        "edits[*].newText": {"max_length": 10_000},
                    },
                }
            ]
        }
        scopes[f"{u}-web"] = {
            "allow": [
                {
                    "tools": [f"{u}__fetch_*"],
                    "args": {
                        "url": {"url": {"hosts": [f"docs.{u}.example.com", "*.example.org", "10.1.2.3"]}},
                        "max_length": {"max": 50_000, "required": False},
                    },
                }
            ]
        }
        scopes[f"{u}-ops"] = {
            "allow": [
                {
                    "tools": [f"{u}__run_*", f"{u}__query_*"],
                    "args": {
                        "command": {"pattern": r"(status|restart|logs)( [a-z0-9-]+)?", "max_length": 64},
                        "mode": {"enum": ["dry", "check"], "required": False},
                        "sql": {"not_pattern": r"(?is).*\b(drop|delete|update|insert)\b.*", "max_length": 2000},
                    },
                }
            ]
        }
        scopes[f"{u}-all"] = {"allow": [{"tools": [f"{u}__*"]}]}
    names = [u.name for u in upstreams]
    agent_defs: dict[str, Any] = {}
    for a in range(agents):
        home = rng.sample(names, rng.randint(1, 3))
        held = [f"{u}-{kind}" for u in home for kind in rng.sample(["reader", "writer", "web", "ops"], 2)]
        held += [f"{u}:read" for u in rng.sample(names, rng.randint(0, 2))]
        if rng.random() < 0.05:
            held.append(f"{rng.choice(names)}-all")
        prefix = rng.choice(["bot", "agent", "contractor", "svc"])
        definition: dict[str, Any] = {"scopes": sorted(set(held)), "owner": f"team{a % 40}@example.com"}
        if rng.random() < 0.03:
            definition["mode"] = "shadow"
        if rng.random() < 0.1:
            definition["expires"] = "2099-12-31"
        agent_defs[f"{prefix}-{a:04d}"] = definition
    deny = [
        {"tools": ["*__delete_*"], "agents": ["contractor-*"], "reason": "contractors never delete"},
        {"tools": [f"{names[0]}__run_*", f"{names[1]}:destructive"], "reason": "frozen upstreams"},
        {"tools": ["*__edit_30"], "agents": ["svc-00*", "bot-01*"], "reason": "legacy editor"},
    ]
    return {"servers": servers, "scopes": scopes, "deny": deny, "agents": agent_defs}


# ---------------------------------------------------------------------------------------------
# Draws
# ---------------------------------------------------------------------------------------------


def arguments_for(name: str, upstream: str, rng: random.Random) -> dict[str, Any]:
    """Arguments for one call, about half of them breaking some constraint."""
    good = rng.random() < 0.5
    root = f"/srv/{upstream}"
    kind = name.split("_", 1)[0]
    inside = f"{root}/docs/guide/{rng.randint(0, 99)}.md"
    outside = rng.choice(["/etc/passwd", f"{root}/docs/../secrets", f"{root}/docs2/x", f"{root}/drafts/locked/a"])
    if kind in ("read", "list"):
        return {"path": inside if good else outside}
    if kind == "search":
        return {"path": inside if good else outside, "pattern": "*.md"}
    if kind == "get":
        return {"id": rng.randint(1, 10**6)} if good else {"id": rng.randint(1, 9), "extra": True}
    if kind == "stat":
        return {"paths": [inside] * rng.randint(1, 4) + ([] if good else [outside])}
    if kind in ("write", "create", "delete"):
        return {"path": f"{root}/drafts/n{rng.randint(0, 9)}.md" if good else outside, "content": "x" * 200}
    if kind == "edit":
        return {"path": f"{root}/drafts/a.md", "edits": [{"oldText": "a", "newText": "b" * (50 if good else 20_000)}]}
    if kind == "fetch":
        host = rng.choice([f"docs.{upstream}.example.com", "a.b.example.org", "0x0a.1.2.3"])
        return {"url": f"https://{host}/p?q=1" if good else "https://evil.example.net/", "max_length": 1000}
    if kind == "run":
        return {"command": "restart api-7" if good else "rm -rf /", "mode": "dry"}
    return {"sql": "select * from t where id = 1" if good else "DROP TABLE users", "limit": 10}


def draw_calls(
    views: dict[str, PolicyView], catalog: Catalog, draws: int, rng: random.Random
) -> list[tuple[str, str, dict[str, Any]]]:
    agents = list(views)
    all_tools = list(catalog.tools)
    visible = {agent: [t["name"] for t in view.tools()] for agent, view in views.items()}
    calls = []
    for _ in range(draws):
        agent = rng.choice(agents)
        seen = visible[agent]
        tool = rng.choice(seen) if seen and rng.random() < 0.8 else rng.choice(all_tools)
        route = catalog.tools[tool]
        calls.append((agent, tool, arguments_for(route.name, route.upstream, rng)))
    return calls


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def run(agents: int, upstreams: int, draws: int, seed: int, profile: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    lists = make_upstreams(upstreams, rng)
    catalog = Catalog.build(lists)
    document = make_scope_document(lists, agents, rng)
    names = [u.name for u in lists]

    scope_file, model_s = timed(lambda: ScopeFile.model_validate(document))
    gc.collect()
    policy, compile_s = timed(lambda: compile_policy(scope_file, upstreams=names))
    compile_runs = [timed(lambda: compile_policy(scope_file, upstreams=names))[1] for _ in range(3)]

    view_times = []
    views: dict[str, PolicyView] = {}
    for agent in policy.agents:
        view, seconds = timed(lambda agent=agent: PolicyView(policy, agent, catalog))  # type: ignore[misc]
        views[agent] = view
        view_times.append(seconds)

    calls = draw_calls(views, catalog, draws, rng)
    for agent, tool, arguments in calls[: min(2000, len(calls))]:  # warm caches and branch predictors
        views[agent].check_tool(tool, arguments)
    gc.collect()
    gc.disable()
    latencies: dict[str, list[float]] = defaultdict(list)
    clock = time.perf_counter_ns
    try:
        for agent, tool, arguments in calls:
            view = views[agent]
            start = clock()
            decision, _ = view.check_tool(tool, arguments)
            elapsed = clock() - start
            latencies[decision.outcome].append(elapsed / 1000)
            latencies["all"].append(elapsed / 1000)
    finally:
        gc.enable()

    result: dict[str, Any] = {
        "agents": len(policy.agents),
        "upstreams": upstreams,
        "tools": len(catalog.tools),
        "scopes": len(scope_file.scopes),
        "rules_per_agent_median": sorted(len(a.rules) for a in policy.agents.values())[len(policy.agents) // 2],
        "draws": draws,
        "model_validate_s": model_s,
        "compile_s": min([compile_s, *compile_runs]),
        "compile_first_s": compile_s,
        "view_build_ms": {
            "first": view_times[0] * 1e3,
            "p50": percentile(view_times, 50) * 1e3,
            "p95": percentile(view_times, 95) * 1e3,
            "max": max(view_times) * 1e3,
            "total_s": sum(view_times),
        },
        "decision_us": {
            outcome: {
                "count": len(values),
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "p99": percentile(values, 99),
                "max": max(values),
            }
            for outcome, values in sorted(latencies.items())
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if profile:
        result["profile"] = {
            "compile": profiled(lambda: compile_policy(scope_file, upstreams=names)),
            "decisions": profiled(lambda: [views[a].check_tool(t, x) for a, t, x in calls]),
            "views": profiled(lambda: [PolicyView(policy, a, catalog) for a in list(policy.agents)[:100]]),
        }
    return result


def profiled(function: Callable[[], Any]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    function()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def report(result: dict[str, Any]) -> str:
    lines = [
        f"policy: {result['agents']:,} agents, {result['upstreams']} upstreams, {result['tools']:,} tools, "
        f"{result['scopes']:,} scopes (median {result['rules_per_agent_median']} rules per agent); "
        f"Python {result['python']} on {result['machine']}",
        "",
        f"{'step':<34}{'time':>12}",
        f"{'ScopeFile.model_validate':<34}{result['model_validate_s'] * 1e3:>9.0f} ms",
        f"{'compile_policy (best of 4)':<34}{result['compile_s'] * 1e3:>9.0f} ms   target <= "
        f"{COMPILE_TARGET_S * 1e3:.0f} ms: {'met' if result['compile_s'] <= COMPILE_TARGET_S else 'MISSED'}",
        f"{'PolicyView, first after a change':<34}{result['view_build_ms']['first']:>9.2f} ms",
        f"{'PolicyView per agent, p50':<34}{result['view_build_ms']['p50']:>9.2f} ms",
        f"{'PolicyView per agent, p95':<34}{result['view_build_ms']['p95']:>9.2f} ms",
        f"{'PolicyView, all agents':<34}{result['view_build_ms']['total_s']:>10.1f} s",
        "",
        f"check_tool latency over {result['draws']:,} draws (us, perf_counter_ns per call)",
        f"{'outcome':<14}{'count':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>10}",
    ]
    for outcome, stats in result["decision_us"].items():
        lines.append(
            f"{outcome:<14}{stats['count']:>9,}{stats['p50']:>9.1f}{stats['p95']:>9.1f}{stats['p99']:>9.1f}"
            f"{stats['max']:>10.1f}"
        )
    p95 = result["decision_us"]["all"]["p95"]
    verdict = "met" if p95 <= DECISION_TARGET_US else "MISSED"
    lines += ["", f"decision p95 {p95:.1f} us, target <= {DECISION_TARGET_US:.0f} us: {verdict}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--upstreams", type=int, default=50)
    parser.add_argument("--draws", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--quick", action="store_true", help="a tenth of the agents, upstreams and draws")
    parser.add_argument("--profile", action="store_true", help="print cProfile summaries of compile and decisions")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.upstreams, args.draws = args.agents // 10, max(1, args.upstreams // 10), args.draws // 10
    result = run(args.agents, args.upstreams, args.draws, args.seed, args.profile)
    print(report(result))
    for name, text in result.get("profile", {}).items():
        print(f"\n--- cProfile: {name} ---\n{text}")
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
