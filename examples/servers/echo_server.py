"""The cheapest useful MCP server: `echo(text)` and `sleep_ms(ms)` over stdio.

Built on the low-level SDK `Server` (handlers are constructor keyword arguments), with no
decorators, no pydantic models for arguments and no tracing middleware, so benchmarks that put
it behind the firewall measure the firewall rather than the upstream.

    python examples/servers/echo_server.py
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(
        name="echo",
        description="Return the text unchanged.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="sleep_ms",
        description="Sleep for `ms` milliseconds, then return.",
        input_schema={"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}, "required": ["ms"]},
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
]


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "echo":
        text = str(args.get("text", ""))
    elif params.name == "sleep_ms":
        ms = int(args.get("ms", 0))
        await anyio.sleep(ms / 1000)
        text = f"slept {ms} ms"
    else:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"unknown tool {params.name}")], is_error=True
        )
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


server: Server[Any] = Server("echo", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
server.middleware.clear()  # drop the default OpenTelemetry middleware: one span per message is not free


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
