"""End-to-end fixtures: the real `mcp-firewall run` process, real upstream servers, real clients.

Every test here starts processes (the firewall as `python -m mcp_firewall run --config F --agent A`,
upstreams from PyPI and npm, the Inspector CLI) and is marked `slow`. Each upstream runs behind
`recording_upstream.py`, which logs every line the upstream receives: a test proves "nothing denied
reached the upstream" from that log, after a sentinel call has flushed the pipe behind it.

Every wait is bounded: client calls by `CALL_TIMEOUT`, polls by `wait_until`, processes by `timeout=`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
VENV_BIN = Path(sys.executable).parent
RECORDER = E2E_DIR / "recording_upstream.py"
CRASHY = E2E_DIR / "crashy_upstream.py"

CALL_TIMEOUT = 30.0  # one request through the firewall, upstream start-up included (2 busy cores)
ERAS = ["legacy", "auto"]  # 2025-11-25 initialize, and 2026-07-28 via server/discover


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope, so that one firewall session can serve all the tests of a module."""
    return "asyncio"


# -- upstreams and their recordings ------------------------------------------------------------------


def python_peer(name: str) -> str:
    """A console script of the venv (mcp-server-time, mcp-server-fetch...), or skip."""
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in the venv: .venv/bin/pip install {name}")
    return str(path)


def node_peer(name: str) -> str:
    """An executable of node_modules/.bin (mcp-server-filesystem...), or skip."""
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the Node MCP peers need Node >= 20")
    path = REPO_ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.skip(f"node_modules/.bin/{name} not found: run `make venv` (it runs `npm ci`) first")
    return str(path)


@dataclass
class Recorded:
    """One upstream behind the recording wrapper: what it received, what it sent, its processes."""

    name: str
    stdin_log: Path
    stdout_log: Path
    pid_file: Path

    def received(self) -> list[dict[str, Any]]:
        return _json_lines(self.stdin_log)

    def sent(self) -> list[dict[str, Any]]:
        return _json_lines(self.stdout_log)

    def tool_calls(self, since: int = 0) -> list[dict[str, Any]]:
        """The tools/call requests it received, from message number `since` on."""
        return [m for m in self.received()[since:] if m.get("method") == "tools/call"]

    def pids(self) -> list[int]:
        if not self.pid_file.exists():
            return []
        return [int(pid) for pid in self.pid_file.read_text(encoding="utf-8").split()]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class FirewallConfig:
    """Writes a firewall file (recorded upstreams) and a scope file into a folder, and runs the firewall."""

    root: Path
    upstreams: dict[str, dict[str, Any]] = field(default_factory=dict)
    recorded: dict[str, Recorded] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / "firewall.yaml"

    @property
    def scope_path(self) -> Path:
        return self.root / "scopes.yaml"

    @property
    def stderr_path(self) -> Path:
        return self.root / "firewall.stderr"

    def upstream(
        self,
        name: str,
        command: str,
        *args: str,
        env: dict[str, str] | None = None,
        record: bool = True,
        **options: Any,
    ) -> Recorded:
        """Add a stdio upstream that runs `command args`, behind the recording wrapper unless `record=False`."""
        logs = self.root / "upstreams"
        logs.mkdir(parents=True, exist_ok=True)
        recorded = Recorded(name, logs / f"{name}.stdin", logs / f"{name}.stdout", logs / f"{name}.pids")
        self.upstreams[name] = {
            "command": sys.executable if record else command,
            "args": [str(RECORDER), command, *args] if record else list(args),
            "env": {
                "MCP_E2E_STDIN_LOG": str(recorded.stdin_log),
                "MCP_E2E_STDOUT_LOG": str(recorded.stdout_log),
                "MCP_E2E_PID_FILE": str(recorded.pid_file),
                **(env or {}),
            },
            "timeout_s": CALL_TIMEOUT,
            **options,
        }
        self.recorded[name] = recorded
        return recorded

    def write(self, scopes: str | None = None, *, scope_files: Sequence[Path] = (), **settings: Any) -> FirewallConfig:
        """Write the firewall file, with `scopes` (YAML text) as its scope file and/or existing `scope_files`.

        `settings` are further top-level keys of the firewall file, e.g. `limits={...}`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        entries = [str(path) for path in scope_files]
        if scopes is not None:
            self.scope_path.write_text(scopes, encoding="utf-8")
            entries.append(self.scope_path.name)
        firewall = {"upstreams": self.upstreams, "scopes": entries, **settings}
        self.path.write_text(yaml.safe_dump(firewall, sort_keys=False), encoding="utf-8")
        return self

    def command(self, agent: str | None = "A") -> list[str]:
        agent_args = ["--agent", agent] if agent is not None else []
        return [sys.executable, "-m", "mcp_firewall", "run", "--config", str(self.path), *agent_args]

    def open_stderr(self) -> IO[str]:
        """The firewall's stderr (appended to, across the runs of one config)."""
        return self.stderr_path.open("a", encoding="utf-8")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""


@pytest.fixture
def firewall_config(tmp_path: Path) -> FirewallConfig:
    return FirewallConfig(tmp_path / "firewall")


def firewall_env() -> dict[str, str]:
    """The firewall's environment: ours, with the venv's console scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MCP_FIREWALL_AGENT", None)
    env.pop("MCP_FIREWALL_CONFIG", None)
    return env


# -- a real SDK client on the firewall ------------------------------------------------------------------


@asynccontextmanager
async def connect(
    config: FirewallConfig, agent: str = "A", mode: str = "legacy", **options: Any
) -> AsyncIterator[Client]:
    """An `mcp.Client` whose one server is the firewall process; the firewall's stderr goes to a file."""
    command = config.command(agent)
    params = StdioServerParameters(command=command[0], args=command[1:], env=firewall_env(), cwd=str(REPO_ROOT))
    connected = False
    try:
        with config.open_stderr() as errlog:
            transport = stdio_client(params, errlog=errlog)
            # Bounded: discover has the SDK's own 10 s limit, every other request `read_timeout_seconds`.
            async with Client(transport, mode=mode, read_timeout_seconds=CALL_TIMEOUT, **options) as client:
                connected = True
                yield client
    except Exception as exc:
        if connected:
            raise
        raise AssertionError(f"no MCP session with the firewall; its stderr:\n{config.stderr()}") from exc


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def wait_until_async(predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns something truthy; fail after `within` s."""
    with anyio.fail_after(within):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)


def wait_until(predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(interval)


@asynccontextmanager
async def nothing_forwarded(upstream: Recorded, sentinel: Callable[[], Any]) -> AsyncIterator[None]:
    """Assert that the calls made in the block reach `upstream` not at all.

    After the block, `sentinel()` makes one allowed tools/call; once the upstream has logged it, every
    line the firewall wrote before it is in the log too (one pipe, in order). The sentinel must then
    be the only tools/call the upstream received since the block began.
    """
    before = len(upstream.received())
    yield
    await sentinel()
    calls = await wait_until_async(lambda: upstream.tool_calls(since=before))
    assert len(calls) == 1, f"the upstream received more than the sentinel: {calls}"


# -- a raw stdio peer, byte for byte ------------------------------------------------------------------------


class RawFirewall:
    """The firewall process driven over raw pipes: send any bytes, read every line it writes."""

    def __init__(self, config: FirewallConfig, agent: str | None = "A", env: dict[str, str] | None = None) -> None:
        self.config = config
        self._errlog = open(config.stderr_path, "ab")  # closed in close() / kill()
        self.process = subprocess.Popen(
            config.command(agent),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errlog,
            env={**firewall_env(), **(env or {})},
            cwd=REPO_ROOT,
        )
        self.lines: list[bytes] = []  # every line of stdout, as written
        self.notifications: list[dict[str, Any]] = []
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in iter(stdout.readline, b""):
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """The next message the firewall writes (notifications are kept in `notifications` too)."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the firewall wrote nothing within {timeout} s") from None
        if line is None:
            raise AssertionError(f"the firewall closed its stdout; stderr:\n{self.config.stderr()}")
        message: dict[str, Any] = json.loads(line)
        if "method" in message and "id" not in message:
            self.notifications.append(message)
        return message

    def response(self, request_id: Any, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """The response to `request_id`, skipping notifications and other messages."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if message.get("id") == request_id and "method" not in message:
                return message

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.response(self._next_id)

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": capabilities or {},
            "clientInfo": {"name": "raw-e2e", "version": "0"},
        }
        result = self.request("initialize", params)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def close(self, timeout: float = 15.0) -> int:
        """Close stdin (how MCP ends a stdio session) and wait for the firewall to exit."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._errlog.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if not self._errlog.closed:
            self._errlog.close()


@pytest.fixture
def raw_firewall() -> Iterator[Callable[..., RawFirewall]]:
    """`raw_firewall(config, agent="A", env=None)` starts one; each is killed at teardown if still running."""
    started: list[RawFirewall] = []

    def start(config: FirewallConfig, agent: str | None = "A", env: dict[str, str] | None = None) -> RawFirewall:
        firewall = RawFirewall(config, agent, env)
        started.append(firewall)
        return firewall

    yield start
    for firewall in started:
        firewall.kill()
