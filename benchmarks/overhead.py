"""What the firewall adds to a tool call: the same echo upstream, measured directly and through the firewall.

    .venv/bin/python benchmarks/overhead.py                 # 6 interleaved rounds, ~1.5 min on 2 cores
    .venv/bin/python benchmarks/overhead.py --quick         # CI smoke: 2 rounds, fewer calls, < 40 s
    .venv/bin/python benchmarks/overhead.py --standin       # the proxy core with an open gate (no policy/spans/audit)
    .venv/bin/python benchmarks/overhead.py --era both --json results.json

Both paths use the official SDK client over stdio. Each round starts a fresh session per path (direct first
in even rounds, firewall first in odd ones) and measures: time from spawn to the first `tools/list` answer,
sequential `tools/call` latency for 100 B and 100 KiB payloads, and calls/s with 8 and 32 calls in flight;
then the peak RSS of every process the session started. Latencies are pooled per path for percentiles; the
"added" columns and the target checks use per-round paired differences (median over rounds), so that drift
in machine load between rounds cancels out. See benchmarks/README.md for the method and caveats.

Exit status: 0 when the benchmark ran (whether or not the targets were met), 1 on errors, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TextIO

import anyio
from _harness import (
    ECHO_SERVER,
    REPO_ROOT,
    ProcessId,
    children_of,
    cpu_seconds,
    descendants_of,
    is_alive,
    kill_if_same,
    median,
    peak_rss_kib,
    percentile,
)
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_FIREWALL_CMD = [
    sys.executable,
    "-m",
    "mcp_firewall",
    "run",
    "--config",
    str(BENCH_DIR / "firewall-bench.yaml"),
    "--agent",
    "bench",
]
STANDIN_CMD = [sys.executable, str(BENCH_DIR / "_harness.py"), "open-proxy"]
ERA_MODES = {"legacy": "legacy", "modern": "auto"}  # Client(mode=...): initialize handshake / server/discover
SMALL_TEXT = "x" * 100
LARGE_TEXT = "y" * (100 * 1024)

CALL_TIMEOUT_S = 30.0
SESSION_TIMEOUT_S = 240.0
REAP_WAIT_S = 3.0


class BenchError(Exception):
    """The benchmark could not run as asked (a process failed, a call failed, a result was wrong)."""


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    rounds: int
    small_calls: int
    large_calls: int
    warmup_small: int
    warmup_large: int
    throughput_calls: int
    concurrency: tuple[int, ...]
    eras: tuple[str, ...]
    firewall_cmd: tuple[str, ...]
    firewall_tool: str
    firewall_label: str


@dataclass(frozen=True)
class PathSpec:
    """One way of reaching the echo tool: a command the client spawns, and the tool's name there."""

    name: str  # "direct" | "firewall"
    era: str
    command: tuple[str, ...]
    tool: str


@dataclass
class RoundResult:
    """One session of one path in one round. Latencies in µs."""

    path: str
    era: str
    round: int
    protocol_version: str
    startup_s: float
    small_us: list[float]
    large_us: list[float]
    calls_per_s: dict[int, float]
    rss_kib: dict[str, int]  # "spawned" (the process the client started) and "upstream" (under the firewall)

    def stat(self, metric: str) -> float:
        """The per-round statistic that is paired across paths: e.g. "small_p50", "c32", "startup"."""
        if metric == "startup":
            return self.startup_s
        if metric.startswith("c"):
            return self.calls_per_s[int(metric[1:])]
        kind, q = metric.split("_p")
        return percentile(self.small_us if kind == "small" else self.large_us, float(q))


@dataclass
class Paired:
    """A per-round paired comparison, firewall vs direct: the median over rounds, and the range."""

    metric: str
    kind: str  # "diff" (firewall − direct) or "ratio" (firewall / direct)
    per_round: list[float]

    @property
    def value(self) -> float:
        return median(self.per_round)


@dataclass
class Target:
    label: str
    metric: str  # a paired metric of `summarise`
    limit: float
    upper: bool  # True: value must be ≤ limit; False: ≥ limit
    unit: str

    def met(self, value: float) -> bool:
        return value <= self.limit if self.upper else value >= self.limit


# Issue 2: a small call through the firewall with policy, spans and audit on.
TARGETS = (
    Target("small call, added p50", "small_p50", 400, True, "µs"),
    Target("small call, added p95", "small_p95", 800, True, "µs"),
    Target("throughput at 32 in flight", "c32", 0.6, False, "×"),
    Target("100 KiB call, added p95", "large_p95", 1500, True, "µs"),
    Target("time to first tools/list, added", "startup", 0.5, True, "s"),
)


# ---------------------------------------------------------------------------------------------- one session


@dataclass
class Spawned:
    """The processes one session started, recorded while alive so that none outlives the session."""

    root: ProcessId | None = None
    tree: list[ProcessId] = field(default_factory=list)

    def record(self, before: set[ProcessId]) -> None:
        new = [child for child in children_of(os.getpid()) if child not in before]
        if len(new) == 1:
            self.root = new[0]
            self.tree = [new[0], *descendants_of(new[0].pid)]

    def peak_rss(self) -> dict[str, int]:
        """VmHWM of the spawned process and, if it has children (the firewall's upstream), of the first child."""
        rss: dict[str, int] = {}
        if self.root is None:
            return rss
        current = [self.root, *descendants_of(self.root.pid)]
        self.tree = list(dict.fromkeys([*self.tree, *current]))
        spawned = peak_rss_kib(self.root)
        if spawned is not None:
            rss["spawned"] = spawned
        if len(current) > 1 and (upstream := peak_rss_kib(current[1])) is not None:
            rss["upstream"] = upstream
        return rss

    async def reap(self) -> list[int]:
        """Wait briefly for every recorded process to exit; kill (by pid, start time checked) what remains."""
        for _ in range(int(REAP_WAIT_S / 0.05)):  # polled: a grandchild's exit cannot be awaited
            if not any(is_alive(p) for p in self.tree):
                break
            await anyio.sleep(0.05)
        return kill_if_same(self.tree)


def _check(result: Any, expected: str) -> None:
    if result.is_error:
        text = result.content[0].text if result.content else ""
        raise BenchError(f"tools/call returned an error: {text[:300]}")
    if not result.content or result.content[0].text != expected:
        raise BenchError("tools/call returned something other than the text sent")


async def _sequential(call: Callable[[str], Awaitable[Any]], text: str, count: int) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        result = await call(text)
        samples.append((time.perf_counter() - start) * 1e6)
        _check(result, text)
    return samples


async def _throughput(call: Callable[[str], Awaitable[Any]], total: int, concurrency: int) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            _check(await call(SMALL_TEXT), SMALL_TEXT)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return total / (time.perf_counter() - start)


async def run_session(
    spec: PathSpec, settings: Settings, round_no: int, errlog: TextIO, env: dict[str, str]
) -> RoundResult:
    """Spawn the path's command, measure everything for one round, close, and make sure nothing is left."""
    params = StdioServerParameters(command=spec.command[0], args=list(spec.command[1:]), env=env, cwd=str(REPO_ROOT))
    client = Client(
        stdio_client(params, errlog=errlog), mode=ERA_MODES[spec.era], cache=None, read_timeout_seconds=CALL_TIMEOUT_S
    )
    spawned = Spawned()
    before = set(children_of(os.getpid()))
    try:
        # One deadline for the whole session; every request (initialize included) also has CALL_TIMEOUT_S.
        with anyio.fail_after(SESSION_TIMEOUT_S):
            start = time.perf_counter()
            async with client:
                listed = await client.list_tools()
                startup_s = time.perf_counter() - start
                spawned.record(before)
                if spec.tool not in {tool.name for tool in listed.tools}:
                    names = ", ".join(sorted(tool.name for tool in listed.tools)) or "none"
                    raise BenchError(f"tool {spec.tool!r} is not listed (listed: {names})")
                session = client.session  # cheaper than Client.call_tool (no input-required driver); both paths

                async def call(text: str) -> Any:
                    return await session.call_tool(spec.tool, {"text": text})

                await _sequential(call, SMALL_TEXT, settings.warmup_small)
                await _sequential(call, LARGE_TEXT, settings.warmup_large)
                small = await _sequential(call, SMALL_TEXT, settings.small_calls)
                large = await _sequential(call, LARGE_TEXT, settings.large_calls)
                rates = {c: await _throughput(call, settings.throughput_calls, c) for c in settings.concurrency}
                rss = spawned.peak_rss()
                version = client.protocol_version
    except TimeoutError as exc:
        raise BenchError(
            f"timed out (a request took over {CALL_TIMEOUT_S:.0f} s, or the session over {SESSION_TIMEOUT_S:.0f} s)"
        ) from exc
    finally:
        if spawned.root is None:  # failed before the tree was recorded: what we started may still be our child
            new = [child for child in children_of(os.getpid()) if child not in before]
            spawned.tree = [p for child in new for p in (child, *descendants_of(child.pid))]
        with anyio.CancelScope(shield=True):
            killed = await spawned.reap()
        if killed:
            print(f"warning: {spec.name} left processes behind; killed {killed}", file=sys.stderr)
    return RoundResult(spec.name, spec.era, round_no, version, startup_s, small, large, rates, rss)


# ---------------------------------------------------------------------------------------------- the run


async def run_all(settings: Settings, workdir: Path) -> list[RoundResult]:
    env = {"MCP_FIREWALL_BENCH_PYTHON": sys.executable, "MCP_FIREWALL_BENCH_DIR": str(workdir)}
    results: list[RoundResult] = []
    for round_no in range(settings.rounds):
        for era in settings.eras:
            paths = [
                PathSpec("direct", era, (sys.executable, str(ECHO_SERVER)), "echo"),
                PathSpec("firewall", era, settings.firewall_cmd, settings.firewall_tool),
            ]
            if round_no % 2:
                paths.reverse()
            for spec in paths:
                log_path = workdir / f"stderr-{spec.name}-{era}-{round_no}.log"
                with log_path.open("w") as errlog:
                    try:
                        result = await run_session(spec, settings, round_no, errlog, env)
                    except Exception as exc:
                        raise BenchError(
                            f"{spec.name} ({era}, round {round_no + 1}): {_describe(exc)}\n"
                            f"{_stderr_tail(log_path, spec)}"
                        ) from exc
                results.append(result)
                print(
                    f"  round {round_no + 1}/{settings.rounds} {era:<6} {spec.name:<8} "
                    f"small p50 {percentile(result.small_us, 50):7.0f} µs   "
                    f"c32 {result.calls_per_s.get(32, 0):6.0f}/s   first list {result.startup_s * 1000:5.0f} ms",
                    file=sys.stderr,
                )
    return results


def _describe(exc: BaseException) -> str:
    """An exception's message; for a task group's exception group, the messages of its leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, BenchError) else str(exc)


def _stderr_tail(log_path: Path, spec: PathSpec, lines: int = 25) -> str:
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        tail = []
    command = shlex.join(spec.command)
    body = "\n".join(f"    {line}" for line in tail) if tail else "    (nothing)"
    return f"  command: {command}\n  its stderr (last {lines} lines):\n{body}"


# ---------------------------------------------------------------------------------------------- report


def _pair(direct: Sequence[RoundResult], firewall: Sequence[RoundResult], metric: str, kind: str) -> Paired:
    by_round = {r.round: r for r in direct}
    values: list[float] = []
    for fw in firewall:
        d = by_round.get(fw.round)
        if d is None:
            continue
        a, b = fw.stat(metric), d.stat(metric)
        values.append(a - b if kind == "diff" else a / b)
    return Paired(metric, kind, values)


def _fmt(value: float | None, spec: str = ",.0f", signed: bool = False) -> str:
    if value is None:
        return "—"
    return format(value, ("+" if signed else "") + spec)


COLUMNS = (  # header, width
    ("path", 9),
    ("p50", 7),
    ("p95", 7),
    ("p99", 7),
    ("+p50", 7),
    ("+p95", 7),
    ("p50", 7),
    ("p95", 7),
    ("+p95", 7),
    ("c8/s", 6),
    ("×", 5),
    ("c32/s", 6),
    ("×", 5),
    ("ms", 6),
    ("+ms", 6),
    ("proxy", 6),
    ("upstr", 6),
)
GROUPS = (("", 1), ("small 100 B, µs", 5), ("100 KiB, µs", 3), ("calls/s, small", 4), ("1st list", 2), ("RSS MB", 2))


def _row(cells: Sequence[str]) -> str:
    """Fixed-width: the path name left-aligned, numbers right-aligned."""
    out = [cells[0].ljust(COLUMNS[0][1])]
    out += [cell.rjust(width) for (_, width), cell in zip(COLUMNS[1:], cells[1:], strict=True)]
    return " ".join(out)


def _group_header() -> str:
    parts: list[str] = []
    index = 0
    for title, span in GROUPS:
        width = sum(w for _, w in COLUMNS[index : index + span]) + span - 1
        parts.append(title.center(width, "─" if title else " ") if title else " " * width)
        index += span
    return " ".join(parts)


def _path_row(
    name: str, rounds: Sequence[RoundResult], paired: dict[str, Paired] | None, rate_ratio: dict[int, float | None]
) -> list[str]:
    small = [x for r in rounds for x in r.small_us]
    large = [x for r in rounds for x in r.large_us]
    rates = {c: median([r.calls_per_s[c] for r in rounds]) for c in (8, 32)}
    spawned = max((r.rss_kib.get("spawned", 0) for r in rounds), default=0)
    upstream = max((r.rss_kib.get("upstream", 0) for r in rounds), default=0)
    proxy_mb = spawned / 1024 if paired is not None and spawned else None
    upstream_mb = (upstream if paired is not None else spawned) / 1024 or None

    def added(metric: str) -> str:
        return _fmt(paired[metric].value, ",.0f", signed=True) if paired else "—"

    return [
        name,
        _fmt(percentile(small, 50)),
        _fmt(percentile(small, 95)),
        _fmt(percentile(small, 99)),
        added("small_p50"),
        added("small_p95"),
        _fmt(percentile(large, 50)),
        _fmt(percentile(large, 95)),
        added("large_p95"),
        _fmt(rates[8]),
        _fmt(rate_ratio[8], ".2f"),
        _fmt(rates[32]),
        _fmt(rate_ratio[32], ".2f"),
        _fmt(median([r.startup_s * 1000 for r in rounds])),
        _fmt(paired["startup"].value * 1000, ",.0f", signed=True) if paired else "—",
        _fmt(proxy_mb, ".1f"),
        _fmt(upstream_mb, ".1f"),
    ]


def _target_line(target: Target, paired: Paired) -> str:
    value, low, high = paired.value, min(paired.per_round), max(paired.per_round)
    if target.unit == "×":
        shown, limit, spread = f"{value:.2f}×", f"≥ {target.limit:.2f}×", f"{low:.2f} … {high:.2f}"
    elif target.unit == "s":
        shown, limit, spread = f"{value:+.2f} s", f"≤ +{target.limit:.1f} s", f"{low:+.2f} … {high:+.2f}"
    else:
        shown, limit, spread = f"{value:+,.0f} µs", f"≤ +{target.limit:,.0f} µs", f"{low:+,.0f} … {high:+,.0f}"
    mark = "✓" if target.met(value) else "✗"
    return f"    {mark} {target.label:<32} {shown:>10}   target {limit:<11}  per round {spread}"


def summarise(results: Sequence[RoundResult], settings: Settings) -> tuple[str, dict[str, Any]]:
    """The printed report and its machine-readable summary."""
    lines: list[str] = []
    summary: dict[str, Any] = {}
    metrics = {
        "small_p50": "diff",
        "small_p95": "diff",
        "small_p99": "diff",
        "large_p50": "diff",
        "large_p95": "diff",
        "startup": "diff",
        "c8": "ratio",
        "c32": "ratio",
    }
    for era in settings.eras:
        direct = [r for r in results if r.era == era and r.path == "direct"]
        firewall = [r for r in results if r.era == era and r.path == "firewall"]
        paired = {metric: _pair(direct, firewall, metric, kind) for metric, kind in metrics.items()}
        versions = sorted({r.protocol_version for r in results if r.era == era})
        lines.append("")
        lines.append(
            f"era {era} (protocol {', '.join(versions)}), {len(direct)} rounds, firewall = {settings.firewall_label}"
        )
        lines.append(_group_header())
        lines.append(_row([name for name, _ in COLUMNS]))
        lines.append(_row(["-" * w for _, w in COLUMNS]))
        one: dict[int, float | None] = {8: 1.0, 32: 1.0}
        lines.append(_row(_path_row("direct", direct, None, one)))
        ratios: dict[int, float | None] = {c: paired[f"c{c}"].value for c in (8, 32)}
        lines.append(_row(_path_row("firewall", firewall, paired, ratios)))
        lines.append(
            "  +: firewall − direct, median of per-round paired differences;"
            " ×: median of per-round firewall/direct ratios"
        )
        if era == "modern" and any(not v.startswith("2026") for v in versions):
            lines.append("  note: a path fell back to the handshake era (mode='auto' negotiated an older version)")
        real = settings.firewall_label == "mcp-firewall run"
        note = "" if real else f" — NOTE: {settings.firewall_label}"
        lines.append(f"  targets (issue 2: policy, spans and audit on){note}")
        lines += [_target_line(target, paired[target.metric]) for target in TARGETS]
        summary[era] = {
            "protocol_versions": versions,
            "paired": {m: {"kind": p.kind, "median": p.value, "per_round": p.per_round} for m, p in paired.items()},
            "targets": {
                t.metric: {"value": paired[t.metric].value, "limit": t.limit, "met": t.met(paired[t.metric].value)}
                for t in TARGETS
            },
            "pooled": {
                path: {
                    "small_us": {q: percentile([x for r in rs for x in r.small_us], q) for q in (50, 95, 99)},
                    "large_us": {q: percentile([x for r in rs for x in r.large_us], q) for q in (50, 95, 99)},
                    "calls_per_s": {c: median([r.calls_per_s[c] for r in rs]) for c in settings.concurrency},
                    "startup_s": median([r.startup_s for r in rs]),
                    "peak_rss_kib": {k: max(r.rss_kib.get(k, 0) for r in rs) for k in ("spawned", "upstream")},
                }
                for path, rs in (("direct", direct), ("firewall", firewall))
            },
        }
    return "\n".join(lines), summary


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None, bool]:
    parser = argparse.ArgumentParser(
        description="Measure what mcp-firewall adds to tool calls: the echo server direct vs through the firewall."
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 6; 2 with --quick)")
    parser.add_argument("--calls", type=int, help="sequential 100 B calls per round (default 400)")
    parser.add_argument("--large-calls", type=int, help="sequential 100 KiB calls per round (default 100)")
    parser.add_argument("--throughput-calls", type=int, help="calls per throughput measurement (default 800)")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: 2 rounds, fewer calls (< 40 s)")
    parser.add_argument(
        "--era",
        choices=("legacy", "modern", "both"),
        default="legacy",
        help="protocol era: legacy = 2025-11-25 initialize handshake (default), "
        "modern = 2026-07-28 via server/discover (mode='auto'), both = each in every round",
    )
    parser.add_argument(
        "--firewall-cmd",
        help=f"command that serves the firewall on stdio (default: {shlex.join(DEFAULT_FIREWALL_CMD)})",
    )
    parser.add_argument(
        "--standin",
        action="store_true",
        help="use the proxy core with an open gate (no policy, spans or audit) as the firewall",
    )
    parser.add_argument("--firewall-tool", default="echo__echo", help="the echo tool's name through the firewall")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write raw samples and the summary here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory (stderr logs, audit, spans)")
    args = parser.parse_args(argv)
    if args.standin and args.firewall_cmd:
        parser.error("--standin and --firewall-cmd are alternatives")
    quick = args.quick
    rounds = args.rounds if args.rounds is not None else (2 if quick else 6)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    for name in ("calls", "large_calls", "throughput_calls"):
        if (value := getattr(args, name)) is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.standin:
        command, label = STANDIN_CMD, "stand-in: proxy core, open gate, no policy/spans/audit"
    elif args.firewall_cmd:
        command, label = shlex.split(args.firewall_cmd), f"custom: {args.firewall_cmd}"
    else:
        command, label = DEFAULT_FIREWALL_CMD, "mcp-firewall run"
    settings = Settings(
        rounds=rounds,
        small_calls=args.calls or (150 if quick else 400),
        large_calls=args.large_calls or (40 if quick else 100),
        warmup_small=20 if quick else 50,
        warmup_large=5 if quick else 10,
        throughput_calls=args.throughput_calls or (300 if quick else 800),
        concurrency=(8, 32),
        eras=("legacy", "modern") if args.era == "both" else (args.era,),
        firewall_cmd=tuple(command),
        firewall_tool=args.firewall_tool,
        firewall_label=label,
    )
    return settings, args.json, args.keep_logs


def _environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "mcp": package_version("mcp"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": os.getloadavg()[0],
        "command_line": sys.argv,
    }


def _records_written(workdir: Path) -> dict[str, int]:
    """Lines in the audit log and span file that firewall-bench.yaml points into the work directory."""
    counts: dict[str, int] = {}
    for kind, name in (("audit records", "bench-audit.jsonl"), ("spans", "bench-spans.jsonl")):
        path = workdir / name
        with contextlib.suppress(OSError), path.open("rb") as file:
            counts[kind] = sum(1 for _ in file)
    return counts


def _describe_records(written: dict[str, int]) -> str:
    """One line on what the firewall recorded: the targets assume both an audit log and spans."""
    found = ", ".join(f"{count:,} {kind}" for kind, count in written.items()) or "nothing"
    missing = [kind for kind in ("audit records", "spans") if not written.get(kind)]
    line = f"the firewall recorded {found} in the work directory"
    if missing:
        line += f" — WARNING: no {' and no '.join(missing)}, so it ran without what the targets assume"
    return line


def _other_load(before: tuple[float, float], after: tuple[float, float], elapsed: float) -> float:
    """The share of the machine's CPU capacity that processes other than ours used during the run."""
    busy, own = after[0] - before[0], after[1] - before[1]
    return max(0.0, busy - own) / (elapsed * (os.cpu_count() or 1))


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path, keep_logs = parse_args(argv)
    environment = _environment()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-firewall-bench-"))
    eras = ", ".join(settings.eras)
    command = shlex.join(settings.firewall_cmd)
    print(f"overhead: {settings.rounds} rounds × {eras}; firewall = {command}", file=sys.stderr)
    started, cpu_before = time.perf_counter(), cpu_seconds()
    keep = keep_logs
    try:
        results = anyio.run(run_all, settings, workdir)
        written = _records_written(workdir)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        keep = True
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    environment["firewall_wrote"] = written
    environment["other_cpu_share"] = other = _other_load(cpu_before, cpu_seconds(), elapsed)
    report, summary = summarise(results, settings)
    print(
        f"mcp-firewall overhead — echo tool over stdio, SDK client, python {environment['python']}, "
        f"mcp {environment['mcp']}, {environment['cpus']} CPUs; {elapsed:.0f} s; "
        f"other processes used {other:.0%} of the CPU meanwhile"
    )
    if not settings.firewall_label.startswith("stand-in"):
        print(_describe_records(written))
    if other > 0.15:
        print("WARNING: the machine was busy with other work; tails (p95/p99) and throughput are unreliable")
    print(report)
    if json_path is not None:
        payload = {
            "settings": asdict(settings),
            "environment": environment,
            "elapsed_s": elapsed,
            "summary": summary,
            "rounds": [asdict(r) for r in results],
        }
        json_path.write_text(json.dumps(payload, indent=1))
        print(f"\nraw results written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
