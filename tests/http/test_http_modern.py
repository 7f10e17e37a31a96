"""2026-07-28 over HTTP: self-contained requests, ids kept apart between concurrent clients of one agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fwhttp import ACCEPT, WAIT, jsonrpc, serve, sse_messages

pytestmark = pytest.mark.anyio

VERSION = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
}


def _request(method: str, params: dict[str, Any], request_id: Any = 1) -> tuple[dict[str, Any], dict[str, str]]:
    headers = {**ACCEPT, "mcp-protocol-version": VERSION, "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = params["name"]
    return jsonrpc(method, {**params, "_meta": ENVELOPE}, request_id), headers


def _answer(response: httpx2.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return sse_messages(response.text)[-1]
    return response.json()  # type: ignore[no-any-return]


async def test_concurrent_requests_with_the_same_id_get_their_own_answers(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        answers: dict[str, dict[str, Any]] = {}

        async def call(text: str) -> None:
            body, headers = _request("tools/call", {"name": "echo__slow", "arguments": {"seconds": 0.3, "text": text}})
            answers[text] = _answer(await http.post(fw.url, json=body, headers={**headers, **fw.auth("alice")}))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for text in ("first", "second", "third"):
                    tg.start_soon(call, text)
    assert {text: a["id"] for text, a in answers.items()} == {"first": 1, "second": 1, "third": 1}
    assert {text: a["result"]["content"][0]["text"] for text, a in answers.items()} == {
        t: f"slow:{t}" for t in ("first", "second", "third")
    }
    assert all(a["result"]["resultType"] == "complete" for a in answers.values())


async def test_modern_errors_map_to_http_statuses_and_notifications_are_accepted(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        auth = fw.auth("alice")
        body, headers = _request("tools/call", {"name": "echo__nope", "arguments": {}})
        unknown = await http.post(fw.url, json=body, headers={**headers, **auth})
        body, headers = _request("tools/list", {})
        mismatch = await http.post(fw.url, json=body, headers={**headers, **auth, "mcp-method": "prompts/list"})
        no_envelope = await http.post(fw.url, json=jsonrpc("tools/list"), headers={**headers, **auth})
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
        notified = await http.post(fw.url, json=note, headers={**headers, **auth})
        get = await http.get(fw.url, headers={**headers, **auth})
        listed = await http.post(fw.url, json=body, headers={**headers, **auth})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == -32602
    assert mismatch.status_code == 400
    assert no_envelope.status_code == 400
    assert notified.status_code == 202 and get.status_code == 405
    assert [t["name"] for t in _answer(listed)["result"]["tools"]] == ["echo__echo", "echo__slow"]
    assert _answer(listed)["result"]["cacheScope"] == "private"


async def test_a_listen_stream_is_acknowledged_with_the_clients_own_id(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        body, headers = _request("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, "listen-7")
        with anyio.fail_after(WAIT):
            async with http.stream("POST", fw.url, json=body, headers={**headers, **fw.auth("alice")}) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        ack = sse_messages(line)[0]
                        break
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-7"
