"""Load test of the HTTP front end: many agents at once, each with its own API key and session.

    python benchmarks/load_http.py                 # 50 agents, 60 s through the firewall, 60 s direct
    python benchmarks/load_http.py --quick         # 10 s each
    python benchmarks/load_http.py --agents 20 --duration 30 --json out.json

What runs (all on loopback, each in its own process):

- an upstream: a low-level SDK server with `echo`, served over Streamable HTTP by uvicorn;
- the firewall: `mcp-firewall run --transport http`, one scope file granting `echo:read` to agents
  `agent-00` … `agent-NN`, one API key each (every call is authenticated, decided, audited-free);
- this process: N SDK clients (`mcp.Client`, 2025-11-25 sessions), each calling `echo__echo` in a loop.

Reported: calls/s, latency p50/p95/p99, errors (must be 0), the firewall's RSS sampled every second
(start, end, peak, and its slope over the run: it must not grow with time), and the latency added
over the same clients calling the upstream directly. A sequential single-client phase gives the
per-call overhead without queueing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcp_firewall.keys import add_key  # noqa: E402

UPSTREAM = textwrap.dedent(
    """
    import sys
    import mcp.types as types
    import uvicorn
    from mcp.server import Server

    async def list_tools(ctx, params):
        schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
        return types.ListToolsResult(tools=[types.Tool(name="echo", description="echo", input_schema=schema)])

    async def call_tool(ctx, params):
        return types.CallToolResult(content=[types.TextContent(type="text", text=params.arguments["text"])])

    server = Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.clear()  # no tracing in the upstream: measure the firewall, not the upstream
    app = server.streamable_http_app(max_sessions=None)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    rss: list[tuple[float, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0.0] * 99
        out: dict[str, Any] = {
            "calls": len(lat),
            "errors": self.errors,
            "calls_per_s": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(q[49] * 1000, 2),
            "p95_ms": round(q[94] * 1000, 2),
            "p99_ms": round(q[98] * 1000, 2),
        }
        if self.rss:
            times = [t for t, _ in self.rss]
            values = [v for _, v in self.rss]
            half = len(values) // 2
            # Growth over the second half: the first fills per-session buffers (bounded), then it must be flat.
            late_t, late_v = times[half:], values[half:]
            slope = statistics.linear_regression(late_t, late_v).slope if len(set(late_t)) > 1 else 0.0
            out["rss_mib"] = {
                "start": round(values[0] / 1024, 1),
                "end": round(values[-1] / 1024, 1),
                "peak": round(max(values) / 1024, 1),
                "first_half_mean": round(statistics.mean(values[: max(half, 1)]) / 1024, 1),
                "second_half_mean": round(statistics.mean(values[half:]) / 1024, 1),
                "second_half_slope_kib_per_min": round(slope * 60, 1),
            }
        return out


async def _phase(name: str, url: str, tokens: list[str | None], duration: float, pid: int | None) -> Phase:
    phase = Phase(name)
    everyone = anyio.Event()
    waiting = [len(tokens)]

    async def ready() -> None:
        waiting[0] -= 1
        if waiting[0] == 0:
            everyone.set()
        await everyone.wait()

    start = [0.0]
    far = time.perf_counter() + 3600

    async def sample() -> None:
        await everyone.wait()
        began = time.perf_counter()
        while True:
            if pid is not None:
                phase.rss.append((time.perf_counter() - began, _rss_kib(pid)))
            await anyio.sleep(1.0)

    deadline = [far]

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)

        async def arm() -> None:
            await everyone.wait()
            start[0] = time.perf_counter()
            deadline[0] = start[0] + duration

        tg.start_soon(arm)
        async with anyio.create_task_group() as agents:
            for token in tokens:
                agents.start_soon(_agent_with_deadline, url, token, phase, deadline, ready)
        phase.seconds = time.perf_counter() - start[0]
        tg.cancel_scope.cancel()
    return phase


async def _agent_with_deadline(
    url: str, token: str | None, phase: Phase, deadline: list[float], ready: Callable[[], Awaitable[None]]
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tool = "echo__echo" if token else "echo"
    try:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
        ):
            await client.call_tool(tool, {"text": "warm-up"})
            await ready()
            while (now := time.perf_counter()) < deadline[0]:
                try:
                    result = await client.call_tool(tool, {"text": "hello"})
                except Exception:
                    phase.errors += 1
                    continue
                if result.is_error:
                    phase.errors += 1
                else:
                    phase.latencies.append(time.perf_counter() - now)
    except Exception as exc:  # a session that could not even open counts as an error
        print(f"agent failed: {exc!r}", file=sys.stderr)
        phase.errors += 1
        await ready()


def _configure(directory: Path, upstream_port: int, agents: int) -> tuple[Path, list[str]]:
    names = [f"agent-{i:02d}" for i in range(agents)]
    (directory / "scopes").mkdir()
    scopes = {"servers": {"echo": {"read": ["echo"]}}, "agents": {n: {"scopes": ["echo:read"]} for n in names}}
    (directory / "scopes" / "load.yaml").write_text(yaml.safe_dump(scopes), encoding="utf-8")
    firewall = {
        "upstreams": {"echo": {"url": f"http://127.0.0.1:{upstream_port}/mcp", "timeout_s": 60}},
        "scopes": ["scopes/"],
        "auth": {"keys": "keys.yaml"},
    }
    path = directory / "firewall.yaml"
    path.write_text(yaml.safe_dump(firewall), encoding="utf-8")
    keys = [add_key(directory / "keys.yaml", name, label=f"{name}-load")[0] for name in names]
    return path, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 s per phase")
    parser.add_argument("--sequential-calls", type=int, default=300, help="calls of the single-client phase")
    parser.add_argument("--skip-direct", action="store_true", help="no direct-to-upstream comparison")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    duration = 10.0 if args.quick else args.duration

    with tempfile.TemporaryDirectory(prefix="mcpfw-load-") as temp:
        directory = Path(temp)
        upstream_port, firewall_port = _free_port(), _free_port()
        config, keys = _configure(directory, upstream_port, args.agents)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)], env=env)
        firewall = subprocess.Popen(
            [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--transport", "http"]
            + ["--port", str(firewall_port)],
            env=env,
            cwd=REPO,
        )
        try:
            _wait_for_port(upstream_port, upstream)
            _wait_for_port(firewall_port, firewall)
            results = anyio.run(_measure, args, duration, keys, upstream_port, firewall_port, firewall.pid)
        finally:
            for process in (firewall, upstream):
                process.terminate()
                process.wait(timeout=15)
    _report(results, args, duration)


async def _measure(
    args: argparse.Namespace, duration: float, keys: list[str], upstream_port: int, firewall_port: int, pid: int
) -> dict[str, Any]:
    through_url = f"http://127.0.0.1:{firewall_port}/mcp"
    direct_url = f"http://127.0.0.1:{upstream_port}/mcp"
    results: dict[str, Any] = {}
    seq_fw = await _sequential(through_url, keys[0], args.sequential_calls)
    seq_direct = await _sequential(direct_url, None, args.sequential_calls)
    results["sequential"] = {"firewall": seq_fw.summary(), "direct": seq_direct.summary()}
    results["load"] = {"firewall": (await _phase("firewall", through_url, list(keys), duration, pid)).summary()}
    if not args.skip_direct:
        direct_tokens: list[str | None] = [None] * len(keys)
        results["load"]["direct"] = (await _phase("direct", direct_url, direct_tokens, duration, None)).summary()
    return results


async def _sequential(url: str, token: str | None, calls: int) -> Phase:
    phase = Phase("sequential")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    tool = "echo__echo" if token else "echo"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
    ):
        for _ in range(20):
            await client.call_tool(tool, {"text": "warm-up"})
        started = time.perf_counter()
        for _ in range(calls):
            now = time.perf_counter()
            await client.call_tool(tool, {"text": "hello"})
            phase.latencies.append(time.perf_counter() - now)
        phase.seconds = time.perf_counter() - started
    return phase


def _report(results: dict[str, Any], args: argparse.Namespace, duration: float) -> None:
    seq = results["sequential"]
    load = results["load"]
    print(f"\n== one client, {args.sequential_calls} sequential calls")
    for name in ("direct", "firewall"):
        s = seq[name]
        print(f"  {name:9} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f}  p99 {s['p99_ms']:7.2f}")
    print(f"  added p50 {seq['firewall']['p50_ms'] - seq['direct']['p50_ms']:+.2f} ms")
    print(f"\n== {args.agents} agents at once, {duration:g} s each")
    for name in ("direct", "firewall"):
        if name not in load:
            continue
        s = load[name]
        print(
            f"  {name:9} {s['calls_per_s']:8.1f} calls/s  p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f}"
            f"  p99 {s['p99_ms']:7.2f}  errors {s['errors']}"
        )
    if "direct" in load:
        added = load["firewall"]["p50_ms"] - load["direct"]["p50_ms"]
        ratio = load["firewall"]["calls_per_s"] / max(load["direct"]["calls_per_s"], 1e-9)
        print(f"  added p50 {added:+.2f} ms; throughput {ratio:.2f}x direct")
    if "rss_mib" in load["firewall"]:
        print(f"  firewall RSS (MiB): {json.dumps(load['firewall']['rss_mib'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    if load["firewall"]["errors"]:
        raise SystemExit(f"{load['firewall']['errors']} errors through the firewall")


if __name__ == "__main__":
    main()
