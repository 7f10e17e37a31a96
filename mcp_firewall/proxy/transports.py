"""Connections to upstream servers: a child process over stdio, Streamable HTTP, or legacy SSE.

Each transport carries JSON-RPC messages as dicts. Stdio is framed here, with no threads and no
pydantic on the path; the HTTP transports are the SDK's, converted at the edge.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc

from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.framing import Oversized, split_lines

__all__ = ["UpstreamSpec", "UpstreamTransport", "minimal_environment", "open_transport"]

logger = logging.getLogger(__name__)

# What every stdio upstream gets from the firewall's environment, besides `env` and `inherit_env`.
BASE_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_TRUSTED_LINE_LIMIT = 256 * 1024 * 1024


@dataclass(frozen=True)
class UpstreamSpec:
    """How to reach one upstream, with every `${VAR}` already expanded."""

    name: str
    kind: str  # "stdio" | "http" | "sse"
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    inherit_env: tuple[str, ...] = ()
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    prefix: bool = True
    shared: bool = False


class UpstreamTransport(Protocol):
    async def send(self, message: jsonrpc.Message) -> None: ...

    def messages(self) -> AsyncIterator[tuple[jsonrpc.Message, bytes | None]]:
        """Each message, with the line it was parsed from when the transport has one."""
        ...

    def describe_exit(self) -> str: ...


def minimal_environment(spec: UpstreamSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a stdio upstream starts with: a small base, named variables, and its own `env`."""
    names = (*BASE_ENVIRONMENT, *spec.inherit_env)
    env = {name: environ[name] for name in names if name in environ}
    env.update(spec.env)
    return env


class _StdioTransport:
    def __init__(self, process: anyio.abc.Process) -> None:
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout

    async def send(self, message: jsonrpc.Message) -> None:
        await self._stdin.send(jsonrpc.dump(message))

    async def messages(self) -> AsyncIterator[tuple[jsonrpc.Message, bytes | None]]:
        async for line in split_lines(self._chunks(), _TRUSTED_LINE_LIMIT):
            if isinstance(line, Oversized):
                continue
            message = jsonrpc.load_trusted(line)
            if message is None:
                logger.warning("upstream wrote a line that is not a JSON-RPC message; ignored")
                continue
            yield message, line
        # Its output ended, usually because it exited: wait a moment for the status, so that
        # describe_exit() says "exited with code 3" rather than "closed its output".
        with anyio.move_on_after(1.0):
            await self._process.wait()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self._stdout.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    def describe_exit(self) -> str:
        code = self._process.returncode
        if code is None:
            return "closed its output"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with code {code}"


@asynccontextmanager
async def _open_stdio(spec: UpstreamSpec, environ: Mapping[str, str]) -> AsyncIterator[_StdioTransport]:
    process = await anyio.open_process(
        [spec.command, *spec.args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,  # the upstream's diagnostics go to the firewall's stderr, never its stdout
        cwd=spec.cwd,
        env=minimal_environment(spec, environ),
        start_new_session=True,  # its own process group, so a wrapper like npx is reaped with its children
    )
    try:
        yield _StdioTransport(process)
    finally:
        with anyio.CancelScope(shield=True):
            await _reap(process)


async def _reap(process: anyio.abc.Process) -> None:
    """Stop a child the way MCP asks (close stdin), then escalate; always wait, so no zombie remains."""
    if process.stdin is not None:
        await process.stdin.aclose()
    for sig, grace in ((None, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            _signal_group(process, sig)
        with anyio.move_on_after(grace):
            await process.wait()
            break
    _signal_group(process, signal.SIGKILL)  # stragglers in the group (children of a wrapper)
    if process.stdout is not None:
        await process.stdout.aclose()


def _signal_group(process: anyio.abc.Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _SdkTransport:
    """Adapts the SDK's client transports (streams of pydantic messages) to dicts."""

    def __init__(self, read: Any, write: Any, label: str) -> None:
        self._read = read
        self._write = write
        self._label = label

    async def send(self, message: jsonrpc.Message) -> None:
        from mcp.shared.message import SessionMessage
        from mcp_types import jsonrpc_message_adapter

        await self._write.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))

    async def messages(self) -> AsyncIterator[tuple[jsonrpc.Message, bytes | None]]:
        async for item in self._read:
            if isinstance(item, Exception):
                logger.warning("upstream %s: %s", self._label, item)
                continue
            yield item.message.model_dump(by_alias=True, exclude_unset=True, mode="json"), None

    def describe_exit(self) -> str:
        return "closed the connection"


@asynccontextmanager
async def _open_http(spec: UpstreamSpec) -> AsyncIterator[_SdkTransport]:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=dict(spec.headers)) as client,
        streamable_http_client(spec.url, http_client=client) as (read, write),
    ):
        yield _SdkTransport(read, write, spec.name)


@asynccontextmanager
async def _open_sse(spec: UpstreamSpec) -> AsyncIterator[_SdkTransport]:
    from mcp.client.sse import sse_client

    async with sse_client(spec.url, headers=dict(spec.headers)) as (read, write):
        yield _SdkTransport(read, write, spec.name)


def open_transport(spec: UpstreamSpec, environ: Mapping[str, str] | None = None) -> Any:
    """An async context manager yielding a connected `UpstreamTransport`."""
    if spec.kind == "stdio":
        return _open_stdio(spec, os.environ if environ is None else environ)
    if spec.kind == "sse":
        return _open_sse(spec)
    return _open_http(spec)


def resolve_cwd(cwd: str | None, base_dir: Path) -> str | None:
    if cwd is None:
        return None
    return str((base_dir / cwd).resolve())
