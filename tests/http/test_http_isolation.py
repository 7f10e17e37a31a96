"""Credentials stay on their side: the agent's never reach an upstream, the upstream's never reach the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest
import uvicorn
from fwhttp import WAIT, serve
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext

from mcp_firewall.proxy.upstream import Upstream

pytestmark = pytest.mark.anyio

UPSTREAM_SECRET = "upstream-secret-Zq81"
AGENT_HEADER_SECRET = "agent-side-secret-Kx42"


def _upstream_server() -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return types.ListToolsResult(
            tools=[
                types.Tool(name="echo", description="echo", input_schema=schema),
                types.Tool(name="fail", description="fails", input_schema=schema),
            ]
        )

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name == "fail":
            raise ValueError("the upstream failed")
        text = (params.arguments or {}).get("text", "")
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("recording-http-upstream", on_list_tools=list_tools, on_call_tool=call_tool)


class _HeaderRecorder:
    """ASGI wrapper: every request's headers, as the upstream received them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


class _Tap(httpx2.AsyncBaseTransport):
    """Everything the agent's client receives (headers and bodies), byte for byte."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.seen = bytearray()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        for name, value in response.headers.raw:
            self.seen += name + b": " + value + b"\n"
        stream = response.stream
        seen = self.seen

        class Tapped(httpx2.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in stream:  # type: ignore[union-attr]
                    seen.extend(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await stream.aclose()  # type: ignore[union-attr]

        response.stream = Tapped()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_no_credential_crosses_the_firewall_in_either_direction(tmp_path: Path) -> None:
    upstream_app = _HeaderRecorder(_upstream_server().streamable_http_app(streamable_http_path="/mcp"))
    server = uvicorn.Server(uvicorn.Config(upstream_app, port=0, log_level="error", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(WAIT):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        upstreams = {
            "remote": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": f"Bearer {UPSTREAM_SECRET}"}}
        }
        scopes = {"servers": {"remote": {"read": ["echo", "fail"]}}, "agents": {"alice": {"scopes": ["remote:read"]}}}
        async with serve(
            tmp_path, upstreams=upstreams, scopes=scopes, servers={}, upstream_factory=lambda spec: Upstream(spec)
        ) as fw:
            tap = _Tap()
            agent_headers = {**fw.auth("alice"), "X-Agent-Secret": AGENT_HEADER_SECRET, "Cookie": "sid=agent-cookie"}
            async with (
                httpx2.AsyncClient(headers=agent_headers, transport=tap, timeout=WAIT) as http,
                Client(streamable_http_client(fw.url, http_client=http), mode="legacy") as client,
            ):
                with anyio.fail_after(WAIT):
                    echoed = await client.call_tool("remote__echo", {"text": "hello"})
                    with pytest.raises(MCPError) as failed:  # an upstream error is relayed, and nothing more
                        await client.call_tool("remote__fail", {"text": "x"})
        server.should_exit = True

    assert echoed.content[0].text == "hello"  # type: ignore[union-attr]
    assert UPSTREAM_SECRET not in str(failed.value)
    received = upstream_app.headers
    assert received and all(h.get("authorization") == f"Bearer {UPSTREAM_SECRET}" for h in received)
    flat = repr(received)
    for secret in (fw.keys["alice"], AGENT_HEADER_SECRET, "agent-cookie"):
        assert secret not in flat
    assert "x-agent-secret" not in flat and "cookie" not in flat
    assert UPSTREAM_SECRET.encode() not in tap.seen
    assert len(tap.seen) > 0
