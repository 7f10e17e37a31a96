"""Streamable HTTP and legacy SSE sessions: both eras, isolation between agents, HTTP hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx2
import pytest
from fwhttp import ACCEPT, INITIALIZE, WAIT, jsonrpc, serve, sse_messages
from mcp import MCPError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_eras_serve_tools_over_streamable_http(tmp_path: Path, mode: str) -> None:
    async with serve(tmp_path) as fw, fw.client("alice", mode=mode) as client:
        with anyio.fail_after(WAIT):
            tools = await client.list_tools()
            result = await client.call_tool("echo__echo", {"text": "hi"})
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert sorted(t.name for t in tools.tools) == ["echo__echo", "echo__slow"]
    assert result.content[0].text == "echo:hi"  # type: ignore[union-attr]


async def test_two_agents_at_once_see_their_own_tools(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, fw.client("alice") as alice, fw.client("bob", mode="auto") as bob:
        with anyio.fail_after(WAIT):
            alice_tools, bob_tools = await alice.list_tools(), await bob.list_tools()
            with pytest.raises(MCPError) as hidden:
                await bob.call_tool("echo__echo", {"text": "x"})
            allowed = await bob.call_tool("notes__read_note", {"text": "n"})
    assert [t.name for t in alice_tools.tools] == ["echo__echo", "echo__slow"]
    assert [t.name for t in bob_tools.tools] == ["notes__read_note", "notes__write_note"]
    assert hidden.value.code == -32602 and "Unknown tool" in str(hidden.value)
    assert not allowed.is_error
    assert [c["params"]["name"] for c in fw.recorders["echo"].calls()] == []  # bob's hidden call reached nobody


async def test_each_session_has_its_own_upstream_connection(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw:
        async with fw.client("alice") as first, fw.client("alice") as second:
            with anyio.fail_after(WAIT):
                await first.call_tool("echo__echo", {"text": "1"})
                await second.call_tool("echo__echo", {"text": "2"})
    initializes = [m for m in fw.recorders["echo"].sent if m.get("method") == "initialize"]
    assert len(initializes) == 2


async def test_a_session_id_with_another_agents_credential_is_refused(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        opened = await http.post(fw.url, json=INITIALIZE, headers={**ACCEPT, **fw.auth("alice")})
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        list_tools = jsonrpc("tools/list", request_id=2)
        hijack = {**ACCEPT, **fw.auth("bob"), "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        stolen = await http.post(fw.url, json=list_tools, headers=hijack)
        stolen_get = await http.get(fw.url, headers={**hijack, "Accept": "text/event-stream"})
        stolen_delete = await http.delete(fw.url, headers=hijack)
        unknown = await http.post(fw.url, json=list_tools, headers={**hijack, "mcp-session-id": "no-such-session"})
        own = {**hijack, **fw.auth("alice")}
        await http.post(fw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=own)
        mine = await http.post(fw.url, json=list_tools, headers=own)
    assert stolen.status_code == stolen_get.status_code == stolen_delete.status_code == 404
    assert stolen.json() == unknown.json()  # indistinguishable from a session that does not exist
    assert mine.status_code == 200
    assert [t["name"] for t in sse_messages(mine.text)[-1]["result"]["tools"]] == ["echo__echo", "echo__slow"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example.com"}, 403),
        ({"Host": "evil.example.com:8080"}, 403),
        ({"Origin": "https://evil.example.com"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://localhost:3000"}, 200),
        ({"Host": "localhost:1234"}, 200),
        ({}, 200),
    ],
)
async def test_host_and_origin_are_checked_on_loopback_by_default(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        response = await http.post(fw.url, json=INITIALIZE, headers={**ACCEPT, **fw.auth("alice"), **headers})
    assert response.status_code == status
    if status == 403:
        assert "Bearer" not in response.text and "mcp-session-id" not in response.headers


async def test_configured_origins_and_hosts_replace_the_loopback_defaults(tmp_path: Path) -> None:
    auth = {"keys": "keys.yaml", "allowed_origins": ["https://app.example.com"], "allowed_hosts": ["mcp.example.com"]}
    async with serve(tmp_path, auth=auth) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        ok = {**ACCEPT, **fw.auth("alice"), "Host": "mcp.example.com", "Origin": "https://app.example.com"}
        allowed = await http.post(fw.url, json=INITIALIZE, headers=ok)
        other_origin = await http.post(fw.url, json=INITIALIZE, headers={**ok, "Origin": "http://localhost:3000"})
        loopback_host = await http.post(fw.url, json=INITIALIZE, headers={**ok, "Host": "127.0.0.1"})
    assert (allowed.status_code, other_origin.status_code, loopback_host.status_code) == (200, 403, 403)


async def test_bodies_are_limited_and_parsed_strictly(tmp_path: Path) -> None:
    async with serve(tmp_path, options={"max_message_bytes": 2048}) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        headers = {**ACCEPT, **fw.auth("alice")}
        big = jsonrpc("initialize", {**INITIALIZE["params"], "pad": "x" * 4096})
        too_big = await http.post(fw.url, content=json.dumps(big), headers=headers)
        duplicate = b'{"jsonrpc":"2.0","id":1,"method":"initialize","method":"tools/list","params":{}}'
        dup = await http.post(fw.url, content=duplicate, headers=headers)
        batch = await http.post(fw.url, content=json.dumps([INITIALIZE]), headers=headers)
        surrogate = await http.post(fw.url, content=b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}', headers=headers)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == -32700
    assert dup.status_code == 400 and dup.json()["error"]["code"] == -32700
    assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
    assert surrogate.status_code == 400 and surrogate.json()["error"]["code"] == -32700


async def test_legacy_sse_transport_serves_an_agent(tmp_path: Path) -> None:
    async with serve(tmp_path, transport="sse") as fw, fw.client("bob") as bob:
        with anyio.fail_after(WAIT):
            tools = await bob.list_tools()
            result = await bob.call_tool("notes__write_note", {"text": "x"})
    assert [t.name for t in tools.tools] == ["notes__read_note", "notes__write_note"]
    assert result.content[0].text == "write_note:x"  # type: ignore[union-attr]


async def test_legacy_sse_session_refuses_another_agents_messages(tmp_path: Path) -> None:
    async with serve(tmp_path, transport="sse") as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        endpoint = ""
        async with http.stream("GET", fw.url, headers={**fw.auth("alice"), "Accept": "text/event-stream"}) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    endpoint = line[5:].strip()
                    break
            post = {**fw.auth("bob"), "Content-Type": "application/json"}
            stolen = await http.post(fw.base + endpoint, json=INITIALIZE, headers=post)
            own = await http.post(fw.base + endpoint, json=INITIALIZE, headers={**post, **fw.auth("alice")})
    assert endpoint.startswith("/messages/?session_id=")
    assert stolen.status_code == 404
    assert own.status_code == 202


async def test_local_single_agent_mode_needs_no_credential(tmp_path: Path) -> None:
    async with serve(tmp_path, auth=None, agent="alice") as fw, fw.client() as client:
        with anyio.fail_after(WAIT):
            tools = await client.list_tools()
    assert [t.name for t in tools.tools] == ["echo__echo", "echo__slow"]
