"""Helpers for `overhead.py`: statistics, /proc inspection of the processes a client spawned, and a stand-in.

Run as a script, this file is the *stand-in firewall*: the proxy core (`serve_stdio`) with an open gate in
front of the echo server — no policy, no spans, no audit — for measuring the proxy before the `run` command
exists, or to separate the cost of the data path from the cost of policy, spans and audit:

    python benchmarks/_harness.py open-proxy
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcessId",
    "children_of",
    "cpu_seconds",
    "descendants_of",
    "is_alive",
    "kill_if_same",
    "median",
    "peak_rss_kib",
    "percentile",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = REPO_ROOT / "examples" / "servers" / "echo_server.py"


# ---------------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# ---------------------------------------------------------------------------------------------- /proc


def cpu_seconds() -> tuple[float, float]:
    """(CPU time the whole machine has been busy, CPU time of this process and its reaped children), in s.

    Sampled before and after a run, the difference of the two deltas is CPU that *other* work used
    meanwhile: the benchmark's numbers are only trustworthy when that is small.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system + own.children_user + own.children_system


@dataclass(frozen=True)
class ProcessId:
    """A pid plus its start time (clock ticks since boot), so a recycled pid is never mistaken for ours."""

    pid: int
    start: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces; fields after it are plain.
    return raw[raw.rindex(")") + 2 :].split()


def _identify(pid: int) -> ProcessId | None:
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":  # state; a zombie has exited already
        return None
    return ProcessId(pid, int(fields[19]))  # starttime is field 22 of stat, 20 after the name


def children_of(pid: int) -> list[ProcessId]:
    """Live processes whose parent is `pid`."""
    found: list[ProcessId] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
            ident = _identify(int(entry))
            if ident is not None:
                found.append(ident)
    return found


def descendants_of(pid: int) -> list[ProcessId]:
    """Live descendants of `pid`, children first."""
    found: list[ProcessId] = []
    frontier = [pid]
    while frontier:
        kids = [child for parent in frontier for child in children_of(parent)]
        found.extend(kids)
        frontier = [kid.pid for kid in kids]
    return found


def is_alive(process: ProcessId) -> bool:
    return _identify(process.pid) == process


def peak_rss_kib(process: ProcessId) -> int | None:
    """VmHWM (peak resident set size) of a live process, in KiB."""
    if not is_alive(process):
        return None
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def kill_if_same(processes: Iterable[ProcessId]) -> list[int]:
    """SIGKILL each process that is still the one we recorded; returns the pids killed."""
    killed: list[int] = []
    for process in processes:
        if is_alive(process):
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(process.pid)
    return killed


# ---------------------------------------------------------------------------------------------- stand-in


def _serve_open_proxy() -> None:
    import anyio

    from mcp_firewall.policy.view import OpenGate
    from mcp_firewall.proxy.stdio import serve_stdio
    from mcp_firewall.proxy.transports import UpstreamSpec

    gate = OpenGate()
    specs = [UpstreamSpec(name="echo", kind="stdio", command=sys.executable, args=(str(ECHO_SERVER),))]

    async def serve() -> None:
        await serve_stdio(agent="bench", specs=specs, gate=lambda: gate, max_message_bytes=4 << 20)

    anyio.run(serve)


if __name__ == "__main__":
    if sys.argv[1:] != ["open-proxy"]:
        sys.exit("usage: python benchmarks/_harness.py open-proxy")
    _serve_open_proxy()
