"""The conformance suite's server under test, written with the official Python SDK (low-level `Server`).

The server scenarios of `@modelcontextprotocol/conformance` call tools, resources and prompts by fixed
names (see shared/notes/conformance-suite.md); this server provides every one of them, with the content
the suite checks. It is served over Streamable HTTP:

    python reference_server.py --port 3001          # http://127.0.0.1:3001/mcp

and, for stdio (what the firewall starts as an upstream):

    python reference_server.py --stdio
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable
from itertools import count
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.transport_security import TransportSecuritySettings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # logging and sampling are deprecated at 2026-07-28

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
EMPTY: dict[str, Any] = {"type": "object", "properties": {}}

JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}

SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {
            "type": "string",
            "description": "Select one option",
            "enum": ["option1", "option2", "option3"],
        },
        "titledSingle": {
            "type": "string",
            "description": "Select one option with titles",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "description": "Select one option (legacy)",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "description": "Select multiple options",
            "minItems": 1,
            "maxItems": 3,
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "description": "Select multiple options with titles",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": [],
}


def _tool(name: str, description: str, schema: dict[str, Any] | None = None) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema or EMPTY)


TOOLS = [
    _tool("test_simple_text", "Tests simple text content response"),
    _tool("test_image_content", "Tests image content response"),
    _tool("test_audio_content", "Tests audio content response"),
    _tool("test_embedded_resource", "Tests embedded resource content response"),
    _tool("test_multiple_content_types", "Tests response with multiple content types (text, image, resource)"),
    _tool("test_tool_with_logging", "Tests tool that emits log messages during execution"),
    _tool("test_tool_with_progress", "Tests tool that reports progress notifications"),
    _tool("test_error_handling", "Tests error response handling"),
    _tool(
        "test_sampling",
        "Tests server-initiated sampling (LLM completion request)",
        {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
    ),
    _tool(
        "test_elicitation",
        "Tests server-initiated elicitation (user input request)",
        {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    ),
    _tool("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034"),
    _tool("test_elicitation_sep1330_enums", "Tests elicitation with enum schema improvements per SEP-1330"),
    _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12),
    _tool("test_reconnection", "Closes its SSE stream mid-call; the result arrives after the client reconnects"),
]


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


async def _log(ctx: ServerRequestContext[Any], text: str) -> None:
    params = types.LoggingMessageNotificationParams(level="info", data=text)
    await ctx.session.send_notification(types.LoggingMessageNotification(params=params), ctx.request_id)


async def _elicit(ctx: ServerRequestContext[Any], message: str, schema: dict[str, Any], label: str) -> str:
    try:
        result = await ctx.session.elicit_form(message, schema, ctx.request_id)  # type: ignore[arg-type]
    except Exception as exc:
        return f"Elicitation not supported or error: {exc}"
    return f"{label}: action={result.action}, content={json.dumps(result.content or {})}"


def _static_content() -> dict[str, list[Any]]:
    embedded = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    mixed = types.TextResourceContents(
        uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
    )
    return {
        "test_simple_text": [_text("This is a simple text response for testing.")],
        "test_image_content": [types.ImageContent(type="image", data=PNG, mime_type="image/png")],
        "test_audio_content": [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")],
        "test_embedded_resource": [types.EmbeddedResource(type="resource", resource=embedded)],
        "test_multiple_content_types": [
            _text("Multiple content types test:"),
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=mixed),
        ],
    }


STATIC = _static_content()
ELICITATIONS = {
    "test_elicitation_sep1034_defaults": ("Please review and update the form fields with defaults", SEP1034_SCHEMA),
    "test_elicitation_sep1330_enums": ("Please select options from the enum fields", SEP1330_SCHEMA),
}


async def _interactive(ctx: ServerRequestContext[Any], name: str, args: dict[str, Any]) -> list[Any]:
    if name == "test_tool_with_logging":
        for step in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await _log(ctx, step)
            await anyio.sleep(0.05)
        return [_text("Tool with logging executed successfully")]
    if name == "test_tool_with_progress":
        for progress in (0, 50, 100):
            await ctx.session.report_progress(progress, 100, f"Completed step {progress} of 100")
            await anyio.sleep(0.05)
        token = (
            ctx.meta.get("progress_token") if isinstance(ctx.meta, dict) else getattr(ctx.meta, "progress_token", None)
        )
        return [_text(str(token if token is not None else "no-progress-token"))]
    if name == "test_sampling":
        message = types.SamplingMessage(role="user", content=_text(str(args.get("prompt", ""))))
        try:
            result = await ctx.session.create_message([message], max_tokens=100, related_request_id=ctx.request_id)
            text = getattr(result.content, "text", "No response")
        except Exception as exc:
            text = f"error: {exc}"
        return [_text(f"LLM response: {text}")]
    if name == "test_elicitation":
        schema = {
            "type": "object",
            "properties": {"response": {"type": "string", "description": "User's response"}},
            "required": ["response"],
        }
        return [_text(await _elicit(ctx, str(args.get("message", "")), schema, "User response"))]
    if name in ELICITATIONS:
        message, schema = ELICITATIONS[name]
        return [_text(await _elicit(ctx, message, schema, "Elicitation completed"))]
    if name == "test_reconnection":
        if ctx.close_sse_stream is not None:
            await ctx.close_sse_stream()
        await anyio.sleep(0.1)
        return [_text("Reconnection test completed successfully.")]
    raise ValueError(f"Unknown tool: {name}")


async def _call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    name, args = params.name, params.arguments or {}
    if name in STATIC:
        return types.CallToolResult(content=STATIC[name])
    if name == "test_error_handling":
        return types.CallToolResult(
            content=[_text("This tool intentionally returns an error for testing")], is_error=True
        )
    if name == "json_schema_2020_12_tool":
        return types.CallToolResult(content=[_text(f"JSON Schema 2020-12 tool called with: {json.dumps(args)}")])
    return types.CallToolResult(content=await _interactive(ctx, name, args))


async def _list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


RESOURCES = [
    types.Resource(uri="test://static-text", name="static-text", title="Static Text Resource", mime_type="text/plain"),
    types.Resource(
        uri="test://static-binary", name="static-binary", title="Static Binary Resource", mime_type="image/png"
    ),
    types.Resource(
        uri="test://watched-resource", name="watched-resource", title="Watched Resource", mime_type="text/plain"
    ),
]
TEMPLATE = types.ResourceTemplate(
    uri_template="test://template/{id}/data", name="template", title="Resource Template", mime_type="application/json"
)


async def _list_resources(ctx: ServerRequestContext[Any], params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def _list_templates(ctx: ServerRequestContext[Any], params: Any) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=[TEMPLATE])


async def _read_resource(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams) -> Any:
    uri = str(params.uri)
    contents: list[Any]
    if uri == "test://static-text":
        contents = [
            types.TextResourceContents(
                uri=uri, mime_type="text/plain", text="This is the content of the static text resource."
            )
        ]
    elif uri == "test://static-binary":
        contents = [types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG)]
    elif uri == "test://watched-resource":
        contents = [types.TextResourceContents(uri=uri, mime_type="text/plain", text="Watched resource content")]
    elif uri.startswith("test://template/") and uri.endswith("/data"):
        item = uri[len("test://template/") : -len("/data")]
        body = json.dumps({"id": item, "templateTest": True, "data": f"Data for ID: {item}"})
        contents = [types.TextResourceContents(uri=uri, mime_type="application/json", text=body)]
    else:
        from mcp import MCPError

        raise MCPError(-32002, f"Resource not found: {uri}")
    return types.ReadResourceResult(contents=contents)


async def _subscribe(ctx: ServerRequestContext[Any], params: Any) -> types.EmptyResult:
    return types.EmptyResult()


PROMPTS = [
    types.Prompt(
        name="test_simple_prompt", title="Simple Test Prompt", description="A simple prompt without arguments"
    ),
    types.Prompt(
        name="test_prompt_with_arguments",
        title="Prompt With Arguments",
        description="A prompt with required arguments",
        arguments=[
            types.PromptArgument(name="arg1", description="First test argument", required=True),
            types.PromptArgument(name="arg2", description="Second test argument", required=True),
        ],
    ),
    types.Prompt(
        name="test_prompt_with_embedded_resource",
        title="Prompt With Embedded Resource",
        description="A prompt that includes an embedded resource",
        arguments=[types.PromptArgument(name="resourceUri", description="URI of the resource to embed", required=True)],
    ),
    types.Prompt(
        name="test_prompt_with_image", title="Prompt With Image", description="A prompt that includes image content"
    ),
]


async def _list_prompts(ctx: ServerRequestContext[Any], params: Any) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=PROMPTS)


async def _get_prompt(ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams) -> types.GetPromptResult:
    args = params.arguments or {}
    if params.name == "test_simple_prompt":
        messages = [types.PromptMessage(role="user", content=_text("This is a simple prompt for testing."))]
    elif params.name == "test_prompt_with_arguments":
        text = f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"
        messages = [types.PromptMessage(role="user", content=_text(text))]
    elif params.name == "test_prompt_with_embedded_resource":
        resource = types.TextResourceContents(
            uri=str(args.get("resourceUri", "test://example")),
            mime_type="text/plain",
            text="Embedded resource content for testing.",
        )
        messages = [
            types.PromptMessage(role="user", content=types.EmbeddedResource(type="resource", resource=resource)),
            types.PromptMessage(role="user", content=_text("Please process the embedded resource above.")),
        ]
    elif params.name == "test_prompt_with_image":
        messages = [
            types.PromptMessage(role="user", content=types.ImageContent(type="image", data=PNG, mime_type="image/png")),
            types.PromptMessage(role="user", content=_text("Please analyze the image above.")),
        ]
    else:
        from mcp import MCPError

        raise MCPError(-32602, f"Unknown prompt: {params.name}")
    return types.GetPromptResult(messages=messages)


async def _set_level(ctx: ServerRequestContext[Any], params: Any) -> types.EmptyResult:
    return types.EmptyResult()


async def _complete(ctx: ServerRequestContext[Any], params: Any) -> types.CompleteResult:
    return types.CompleteResult(completion=types.Completion(values=[], total=0, has_more=False))


def build_server() -> Server[Any]:
    return Server(
        "mcp-conformance-reference-server",
        version="1.0.0",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
        on_list_resources=_list_resources,
        on_list_resource_templates=_list_templates,
        on_read_resource=_read_resource,
        on_subscribe_resource=_subscribe,
        on_unsubscribe_resource=_subscribe,
        on_list_prompts=_list_prompts,
        on_get_prompt=_get_prompt,
        on_set_logging_level=_set_level,
        on_completion=_complete,
    )


class MemoryEventStore(EventStore):
    """Events for Last-Event-ID resumption. Event ids are global; a replay covers only the stream (and so the
    session) of the event it resumes from, so sessions' streams never mix even when their request ids collide."""

    def __init__(self) -> None:
        self._events: list[tuple[int, StreamId, Any, int]] = []
        self._ids = count(1)
        self._streams: dict[StreamId, int] = {}

    async def store_event(self, stream_id: StreamId, message: Any) -> EventId:
        number = next(self._ids)
        if message is None:  # a priming event opens a new incarnation of the stream id
            self._streams[stream_id] = number
        self._events.append((number, stream_id, message, self._streams.get(stream_id, 0)))
        return str(number)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        if not last_event_id.isdigit():
            return None
        after = int(last_event_id)
        origin = next(((s, g) for n, s, _, g in self._events if n == after), None)
        if origin is None:
            return None
        stream, generation = origin
        for number, s, message, g in self._events:
            if number > after and s == stream and g == generation and message is not None:
                await send_callback(EventMessage(message, str(number)))
        return stream


def main(argv: list[str] | None = None, run: Callable[..., Any] = anyio.run) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--stdio", action="store_true", help="serve on stdin/stdout instead")
    args = parser.parse_args(argv)
    server = build_server()
    if args.stdio:
        from mcp.server.stdio import stdio_server

        async def serve_stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        run(serve_stdio)
        return
    import uvicorn

    security = TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    app = server.streamable_http_app(event_store=MemoryEventStore(), retry_interval=1000, transport_security=security)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
