"""Small in-memory upstream servers built with the official SDK, one behaviour each."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import anyio
import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


def lowlevel(
    tools: list[types.Tool],
    call: Any = None,
    *,
    page_size: int | None = None,
    name: str = "lowlevel",
) -> Server[Any]:
    """A low-level server with these tools; `call(name, arguments, ctx)` answers calls (echo by default)."""

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        if page_size is None:
            return types.ListToolsResult(tools=tools)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + page_size
        return types.ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        if call is not None:
            return await call(params.name, params.arguments or {}, ctx)
        text = f"{params.name}:{(params.arguments or {}).get('text', '')}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def tool(name: str, **properties: Any) -> types.Tool:
    props = properties or {"text": {"type": "string"}}
    return types.Tool(name=name, description=f"The {name} tool.", input_schema={"type": "object", "properties": props})


class Answer(BaseModel):
    answer: str


def _ask(question: str) -> Elicit[Answer]:
    return Elicit(question, Answer)


def _sample(text: str) -> Sample:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    return Sample([message], max_tokens=10)


def rich() -> MCPServer:
    """Content of every kind, progress, logging, elicitation, sampling, resources, templates, prompts."""
    server = MCPServer("rich", version="1.0.0")

    @server.tool()
    def weather(city: str) -> dict[str, Any]:
        """Structured content."""
        return {"city": city, "temperature": 21}

    @server.tool()
    def picture() -> list[types.ContentBlock]:
        """An image and an embedded resource."""
        resource = types.TextResourceContents(uri="rich://doc", text="embedded", mime_type="text/plain")
        return [
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=resource),
        ]

    @server.tool()
    def fail(reason: str) -> str:
        """Always an error result."""
        raise ToolError(reason)

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        """Progress per step, and a log message."""
        await ctx.info(f"counting to {n}")
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
        return f"counted to {n}"

    @server.tool()
    async def wait(seconds: float) -> str:
        """Sleeps (for cancellation and timeouts)."""
        await anyio.sleep(seconds)
        return "woke"

    @server.tool()
    def ask(question: str, reply: Annotated[ElicitationResult[Answer], Resolve(_ask)]) -> str:
        """Elicitation."""
        return f"answered: {reply.data.answer}" if reply.action == "accept" else f"declined: {reply.action}"

    @server.tool()
    def summarize(text: str, summary: Annotated[types.CreateMessageResult, Resolve(_sample)]) -> str:
        """Sampling."""
        content = summary.content
        return f"summary: {content.text}" if isinstance(content, types.TextContent) else "summary: ?"

    @server.resource("rich://static", mime_type="text/plain")
    def static() -> str:
        return "static text"

    @server.resource("rich://items/{item}", mime_type="text/plain")
    def item(item: str) -> str:
        return f"item {item}"

    @server.prompt()
    def greet(name: str) -> str:
        """Greets someone."""
        return f"Hello {name}"

    return server
