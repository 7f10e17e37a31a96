"""Helpers for tests/http: the firewall's HTTP front end, served for real on loopback by uvicorn in the test loop.

Agents are official SDK clients (or raw httpx2 requests, for the HTTP-level checks) talking to a real
socket. Upstreams are SDK servers in memory (one connection per agent session, like stdio children),
recorded, so that a test can see what reached them. Config and scope files are real files in tmp_path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import yaml
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from support.harness import Recorder, memory_opener
from support.servers import lowlevel, tool

from mcp_firewall.cli import upstream_specs
from mcp_firewall.commands.common import load_policy_of
from mcp_firewall.config.loader import load_firewall_file
from mcp_firewall.keys import add_key
from mcp_firewall.proxy.http import FirewallApp, build_app, serve_http
from mcp_firewall.proxy.reload import PolicyHolder
from mcp_firewall.proxy.transports import UpstreamSpec
from mcp_firewall.proxy.upstream import Upstream

WAIT = 10.0  # bound for every network wait (two busy cores)

SCOPES = {
    "servers": {
        "echo": {"read": ["echo", "slow"]},
        "notes": {"read": ["read_note"], "write": ["write_note"]},
    },
    "agents": {
        "alice": {"scopes": ["echo:read"]},
        "bob": {"scopes": ["notes:read", "notes:write"]},
    },
}


def echo_server() -> Any:
    async def call(name: str, arguments: dict[str, Any], ctx: Any) -> Any:
        import mcp.types as types

        if name == "slow":
            await anyio.sleep(float(arguments.get("seconds", 5)))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"{name}:{arguments.get('text', '')}")]
        )

    return lowlevel(
        [tool("echo"), tool("slow", seconds={"type": "number"}, text={"type": "string"})], call, name="echo"
    )


def notes_server() -> Any:
    return lowlevel([tool("read_note"), tool("write_note")], name="notes")


@dataclass
class Running:
    """A firewall serving on loopback."""

    url: str  # the MCP endpoint: .../mcp, or .../sse for the legacy transport
    base: str
    app: FirewallApp
    dir: Path
    recorders: dict[str, Recorder]
    keys: dict[str, str] = field(default_factory=dict)  # agent -> an API key

    def auth(self, agent: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[agent]}"}

    @asynccontextmanager
    async def client(self, agent: str | None = None, *, mode: str = "legacy", token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else (self.auth(agent) if agent else {})
        if self.url.endswith("/sse"):
            async with Client(sse_client(self.url, headers=headers), mode=mode) as client:
                yield client
            return
        async with (
            httpx2.AsyncClient(headers=headers, timeout=WAIT) as http,
            Client(streamable_http_client(self.url, http_client=http), mode=mode) as client,
        ):
            yield client


def write_config(
    directory: Path,
    *,
    auth: Mapping[str, Any] | None,
    scopes: Mapping[str, Any] = SCOPES,
    upstreams: Mapping[str, Any] | None = None,
) -> Path:
    (directory / "scopes").mkdir(exist_ok=True)
    (directory / "scopes" / "agents.yaml").write_text(yaml.safe_dump(dict(scopes)), encoding="utf-8")
    firewall: dict[str, Any] = {
        "upstreams": dict(upstreams or {name: {"command": "unused-in-memory"} for name in scopes["servers"]}),
        "scopes": ["scopes/"],
    }
    if auth is not None:
        firewall["auth"] = dict(auth)
    path = directory / "firewall.yaml"
    path.write_text(yaml.safe_dump(firewall), encoding="utf-8")
    return path


@asynccontextmanager
async def serve(
    directory: Path,
    *,
    auth: Mapping[str, Any] | None = None,
    transport: str = "http",
    agent: str | None = None,
    servers: Mapping[str, Callable[[], Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    make_keys: bool = True,
    scopes: Mapping[str, Any] = SCOPES,
    upstream_factory: Callable[[UpstreamSpec], Upstream] | None = None,
    upstreams: Mapping[str, Any] | None = None,
) -> AsyncIterator[Running]:
    """Start the firewall (in this event loop) and stop it when the block ends."""
    auth = {"keys": "keys.yaml"} if auth is None and agent is None else auth
    config = load_firewall_file(write_config(directory, auth=auth, scopes=scopes, upstreams=upstreams))
    keys: dict[str, str] = {}
    if make_keys and auth is not None and "keys" in auth:
        for name in scopes["agents"]:
            keys[name], _ = add_key(directory / auth["keys"], name, label=f"{name}-1")
    servers = servers or {"echo": echo_server, "notes": notes_server}
    recorders = {name: Recorder() for name in servers}
    opener = memory_opener({name: make() for name, make in servers.items()}, recorders)
    holder = PolicyHolder(config.path, load_policy_of(config), list(config.firewall.scopes))
    app = build_app(
        config,
        gate=holder,
        specs=upstream_specs(config),
        transport=transport,
        host="127.0.0.1",
        port=0,
        agent=agent,
        policy_listeners=holder.listeners,
        upstream_factory=upstream_factory or (lambda spec: Upstream(spec, open_transport_fn=opener)),
        options=options,
    )
    ready = anyio.Event()
    stop = anyio.Event()
    urls: list[str] = []

    def announce(url: str) -> None:
        urls.append(url.split(" ")[0])
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve_http(app, ready=announce, stop=stop))
        with anyio.fail_after(WAIT):
            await ready.wait()
        url = urls[0]
        base = url.rsplit("/", 1)[0]
        try:
            yield Running(url, base, app, directory, recorders, keys)
        finally:
            stop.set()


def jsonrpc(method: str, params: Mapping[str, Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    return message


INITIALIZE = jsonrpc(
    "initialize",
    {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
)
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an SSE body."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
