"""What flows besides request and response: list changes, timeouts, upstreams that go away."""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from support.harness import firewall
from support.servers import lowlevel, rich, tool

pytestmark = pytest.mark.anyio


def growing() -> Server[Any]:
    """A server whose `grow` tool adds a tool and announces the change."""
    tools = [tool("grow")]

    async def call(name: str, arguments: dict[str, Any], ctx: ServerRequestContext[Any]) -> types.CallToolResult:
        tools.append(tool(f"extra{len(tools)}"))
        await ctx.session.send_tool_list_changed()
        return types.CallToolResult(content=[types.TextContent(type="text", text="grown")])

    return lowlevel(tools, call)


async def test_an_upstream_list_change_reaches_a_handshake_era_agent_and_the_list_is_refreshed() -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with firewall({"g": growing()}, message_handler=on_message) as fw:
        await fw.client.call_tool("g__grow", {})
        with anyio.fail_after(5):
            await changed.wait()
        names = [t.name for t in (await fw.client.list_tools()).tools]
    assert names == ["g__grow", "g__extra1"]


async def test_a_modern_agent_hears_of_list_changes_on_its_listen_stream() -> None:
    async with firewall({"g": growing()}, mode="auto") as fw:
        async with fw.client.listen(tools_list_changed=True) as subscription:
            await fw.client.call_tool("g__grow", {})
            with anyio.fail_after(5):
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
        names = [t.name for t in (await fw.client.list_tools()).tools]
    assert names == ["g__grow", "g__extra1"]
    listen_frames = [m for m in fw.downstream if m.get("method") == "notifications/tools/list_changed"]
    assert listen_frames and "io.modelcontextprotocol/subscriptionId" in listen_frames[0]["params"]["_meta"]


async def test_a_call_the_upstream_sits_on_times_out_with_a_clear_error_and_is_cancelled_upstream() -> None:
    async with firewall({"rich": rich}, timeout_s=0.5) as fw:
        with pytest.raises(MCPError) as caught:
            await fw.client.call_tool("rich__wait", {"seconds": 30})
        assert "notifications/cancelled" in fw.recorders["rich"].methods()
    assert caught.value.error.code == -32001
    assert "rich" in caught.value.error.message and "0.5 s" in caught.value.error.message
