"""The example upstream servers (and agents) work over real stdio with the official SDK client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext
from mcp.types import (
    CallToolResult,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    LoggingMessageNotificationParams,
    TextContent,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
NOTES = REPO / "examples" / "servers" / "notes_server.py"
ECHO = REPO / "examples" / "servers" / "echo_server.py"
ERAS = ["legacy", "auto"]  # 2025-11-25 handshake, and 2026-07-28 via server/discover


def notes_params(root: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(NOTES), "--root", str(root)])


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize("mode", ERAS)
async def test_notes_tools_and_annotations(tmp_path: Path, mode: str) -> None:
    async with Client(notes_params(tmp_path), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"list_notes", "read_note", "create_note", "delete_note", "slow_count"} <= tools.keys()
    hints = {name: tool.annotations for name, tool in tools.items() if tool.annotations}
    assert all(hints[n].read_only_hint is True for n in ("list_notes", "read_note", "search_notes"))
    assert all(hints[n].destructive_hint is True for n in ("delete_note", "overwrite_note"))
    assert hints["create_note"].read_only_hint is False and hints["create_note"].destructive_hint is False


@pytest.mark.parametrize("mode", ERAS)
async def test_notes_crud(tmp_path: Path, mode: str) -> None:
    async with Client(notes_params(tmp_path), mode=mode) as client:
        assert not (await client.call_tool("create_note", {"name": "a.txt", "text": "hello"})).is_error
        assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "hello"
        assert not (await client.call_tool("append_note", {"name": "a.txt", "text": " world"})).is_error
        assert text(await client.call_tool("read_note", {"name": "a.txt"})) == "hello world"
        listed = await client.call_tool("list_notes", {})
        assert listed.structured_content == {"result": ["a.txt"]}
        assert text(await client.call_tool("search_notes", {"query": "WORLD"})) == "a.txt"
        assert (await client.call_tool("create_note", {"name": "a.txt", "text": "again"})).is_error
        assert not (await client.call_tool("delete_note", {"name": "a.txt"})).is_error
        assert not (tmp_path / "a.txt").exists()
        assert (await client.call_tool("read_note", {"name": "a.txt"})).is_error


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


async def test_notes_names_cannot_escape_root(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "root"), mode="legacy") as client:
        for name in ["../escape", "/tmp/abs", "..", ".", "a/b", "", "x\\y", "a\nb"]:
            result = await client.call_tool("create_note", {"name": name, "text": "pwned"})
            assert result.is_error and "invalid note name" in text(result), name
            assert (await client.call_tool("read_note", {"name": name})).is_error, name
            assert (await client.call_tool("delete_note", {"name": name})).is_error, name
    assert tree(tmp_path) == ["root"]


@pytest.mark.parametrize("mode", ERAS)
async def test_slow_count_reports_progress(tmp_path: Path, mode: str) -> None:
    events: list[tuple[float, float | None, str | None]] = []
    logs: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with Client(notes_params(tmp_path), mode=mode, logging_callback=on_log) as client:
        result = await client.call_tool("slow_count", {"n": 3, "delay_ms": 5}, progress_callback=on_progress)
    assert text(result) == "counted to 3"
    assert events == [(1, 3, "step 1/3"), (2, 3, "step 2/3"), (3, 3, "step 3/3")]
    if mode == "legacy":  # 2026-07-28 only sends log messages to clients that opt in per request
        assert logs == ["counting to 3"]


@pytest.mark.parametrize("mode", ERAS)
async def test_elicitation_and_sampling(tmp_path: Path, mode: str) -> None:
    seen: list[str] = []

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(params.message)
        return ElicitResult(action="accept", content={"answer": "blue"})

    async def sample(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        assert isinstance(params.messages[0].content, TextContent)
        seen.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="short"), model="fake")

    async with Client(notes_params(tmp_path), mode=mode, elicitation_callback=elicit, sampling_callback=sample) as c:
        assert text(await c.call_tool("ask_user", {"question": "Favourite colour?"})) == "user answered: blue"
        assert text(await c.call_tool("summarize", {"text": "a very long note"})) == "short"
    assert seen[0] == "Favourite colour?" and "a very long note" in seen[1]


async def test_resources_and_prompt(tmp_path: Path) -> None:
    (tmp_path / "n1").write_text("first note", encoding="utf-8")
    async with Client(notes_params(tmp_path)) as client:
        assert [str(r.uri) for r in (await client.list_resources()).resources] == ["notes://index"]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["notes://{name}"]
        index = (await client.read_resource("notes://index")).contents[0]
        note = (await client.read_resource("notes://n1")).contents[0]
        assert getattr(index, "text", None) == "n1" and getattr(note, "text", None) == "first note"
        prompt = await client.get_prompt("review_note", {"name": "n1"})
        assert isinstance(prompt.messages[0].content, TextContent)
        assert "first note" in prompt.messages[0].content.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_notes_streamable_http(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, str(NOTES), "--root", str(tmp_path), "--transport", "streamable-http", "--port", str(port)]
    async with await anyio.open_process(cmd, stderr=subprocess.DEVNULL) as proc:
        try:
            with anyio.fail_after(20):
                while True:  # wait until uvicorn accepts connections
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        assert proc.returncode is None, "notes server exited"
                        await anyio.sleep(0.1)
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await client.call_tool("create_note", {"name": "h", "text": "over http"})
                assert text(await client.call_tool("read_note", {"name": "h"})) == "over http"
        finally:
            proc.terminate()


@pytest.mark.parametrize("mode", ERAS)
async def test_echo_server(mode: str) -> None:
    async with Client(StdioServerParameters(command=sys.executable, args=[str(ECHO)]), mode=mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["echo", "sleep_ms"]
        assert text(await client.call_tool("echo", {"text": "ping"})) == "ping"
        assert text(await client.call_tool("sleep_ms", {"ms": 1})) == "slept 1 ms"
        assert (await client.call_tool("nope", {})).is_error


async def test_node_peer_everything(node_bin: Callable[[str], str]) -> None:
    """The Node reference server installed by `npm ci` runs offline (used by other tests as an upstream)."""
    params = StdioServerParameters(command=node_bin("mcp-server-everything"), args=["stdio"])
    async with Client(params, mode="legacy") as client:
        assert "echo" in [t.name for t in (await client.list_tools()).tools]
        assert "ping" in text(await client.call_tool("echo", {"message": "ping"}))


@pytest.mark.parametrize(
    ("script", "module"),
    [
        ("sdk_agent.py", "mcp"),
        ("pydantic_ai_agent.py", "pydantic_ai"),
        ("openai_agents_agent.py", "agents"),
    ],
)
def test_example_agents_run_against_notes_server(tmp_path: Path, script: str, module: str) -> None:
    """Each example agent runs to completion with the notes server standing in for the firewall."""
    pytest.importorskip(module)
    env = dict(os.environ, MCP_FIREWALL_CMD=json.dumps([sys.executable, str(NOTES), "--root", str(tmp_path)]))
    run = subprocess.run(
        [sys.executable, str(REPO / "examples" / "agents" / script)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "delete_note" in run.stdout and "invalid note name" in run.stdout
