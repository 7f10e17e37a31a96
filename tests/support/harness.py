"""In-process firewall for tests: an SDK client ↔ AgentSession ↔ in-memory upstream servers.

Nothing is mocked at the protocol level: the agent side is the official `mcp.Client`, each upstream
is a real SDK server running in memory, and every message an upstream receives is recorded, so a
test can assert that a denied request reached nobody.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from mcp.client._memory import InMemoryTransport
from mcp.shared.message import SessionMessage
from mcp_types import jsonrpc_message_adapter

from mcp_firewall.policy.view import Gate, OpenGate
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.session import AgentSession
from mcp_firewall.proxy.transports import UpstreamSpec, _SdkTransport
from mcp_firewall.proxy.upstream import Upstream


@dataclass
class Recorder:
    """Every message the firewall sent to one upstream."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    def methods(self) -> list[str]:
        return [m.get("method", "<response>") for m in self.sent]

    def calls(self, method: str = "tools/call") -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("method") == method]


class _RecordingTransport(_SdkTransport):
    def __init__(self, read: Any, write: Any, label: str, recorder: Recorder) -> None:
        super().__init__(read, write, label)
        self._recorder = recorder

    async def send(self, message: jsonrpc.Message) -> None:
        self._recorder.sent.append(json.loads(json.dumps(message)))
        await super().send(message)


def memory_opener(servers: Mapping[str, Any], recorders: dict[str, Recorder]) -> Callable[[UpstreamSpec], Any]:
    def open_memory(spec: UpstreamSpec) -> Any:
        @asynccontextmanager
        async def connect() -> AsyncIterator[_RecordingTransport]:
            server = servers[spec.name]
            async with InMemoryTransport(server() if callable(server) and not hasattr(server, "run") else server) as (
                read,
                write,
            ):
                yield _RecordingTransport(read, write, spec.name, recorders[spec.name])

        return connect()

    return open_memory


@dataclass
class Firewall:
    client: Client
    session: AgentSession
    upstreams: dict[str, Upstream]
    recorders: dict[str, Recorder]
    downstream: list[dict[str, Any]]  # every message the firewall wrote to the agent


@asynccontextmanager
async def firewall(
    servers: Mapping[str, Any],
    *,
    gate: Gate | None = None,
    agent: str = "tester",
    mode: str = "legacy",
    prefix: Mapping[str, bool] | None = None,
    timeout_s: float = 5.0,
    session_options: Mapping[str, Any] | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[Firewall]:
    """Start the firewall in front of in-memory `servers` and connect an SDK client to it.

    `session_options` are further `AgentSession` keyword arguments (`observer`, `pins`, ...).
    """
    the_gate = gate or OpenGate()
    recorders = {name: Recorder() for name in servers}
    opener = memory_opener(servers, recorders)
    upstreams = [
        Upstream(
            UpstreamSpec(name=name, kind="memory", timeout_s=timeout_s, prefix=(prefix or {}).get(name, True)),
            open_transport_fn=opener,
        )
        for name in servers
    ]
    to_client_send, to_client_recv = anyio.create_memory_object_stream[SessionMessage | Exception](100)
    from_client_send, from_client_recv = anyio.create_memory_object_stream[SessionMessage](100)
    downstream: list[dict[str, Any]] = []

    async def write(data: bytes) -> None:
        message = json.loads(data)
        downstream.append(message)
        await to_client_send.send(SessionMessage(jsonrpc_message_adapter.validate_python(message)))

    session = AgentSession(
        agent=agent, gate=lambda: the_gate, upstreams=upstreams, write=write, **(session_options or {})
    )

    async def lines() -> AsyncIterator[bytes]:
        async for item in from_client_recv:
            yield item.message.model_dump_json(by_alias=True, exclude_unset=True).encode()

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        yield to_client_recv, from_client_send

    async with anyio.create_task_group() as tg:
        for up in upstreams:
            tg.start_soon(up.run)
        tg.start_soon(session.serve, lines())
        async with Client(transport(), mode=mode, cache=None, **client_kwargs) as client:  # type: ignore[arg-type]
            yield Firewall(client, session, {u.name: u for u in upstreams}, recorders, downstream)
        for up in upstreams:
            up.stop()
        tg.cancel_scope.cancel()


async def raw_session(
    servers: Mapping[str, Any], *, gate: Gate | None = None, max_message_bytes: int = 4096
) -> tuple[AgentSession, list[dict[str, Any]], dict[str, Recorder], list[Upstream]]:
    """A session driven line by line (for wire-level tests); the caller runs the upstreams."""
    the_gate = gate or OpenGate()
    recorders = {name: Recorder() for name in servers}
    upstreams = [
        Upstream(
            UpstreamSpec(name=name, kind="memory", timeout_s=5.0), open_transport_fn=memory_opener(servers, recorders)
        )
        for name in servers
    ]
    out: list[dict[str, Any]] = []

    async def write(data: bytes) -> None:
        out.append(json.loads(data))

    session = AgentSession(
        agent="tester", gate=lambda: the_gate, upstreams=upstreams, write=write, max_message_bytes=max_message_bytes
    )
    return session, out, recorders, upstreams


async def eventually(predicate: Callable[[], object]) -> None:
    """Wait (at most 5 s) until `predicate()` holds: for facts seen from outside, like what an upstream received."""
    with anyio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - the fact has no event to wait on
            await anyio.sleep(0.005)
