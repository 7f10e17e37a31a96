"""The firewall in front of @modelcontextprotocol/server-everything, in both protocol eras.

server-everything registers its sampling / elicitation tools only when the client it sees declares
those capabilities, so it shows exactly what the firewall offers upstream: a capability that
`servers:` denies is never offered, and the tool that would use it does not even exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.client import ClientRequestContext
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ImageContent,
    LoggingMessageNotificationParams,
    TextContent,
    TextResourceContents,
)

from .conftest import ERAS, FirewallConfig, Recorded, connect, node_peer, text_of, wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SCOPES = """
servers:
  everything:
    read: [echo, get-sum, get-structured-content, get-tiny-image, trigger-long-running-operation]
    write: [toggle-simulated-logging, trigger-sampling-request, trigger-elicitation-request]
    sampling: {sampling}
    elicitation: allow
scopes:
  demo:
    allow:
      - tools: [everything:read, everything:write]
      - resources: ["demo://resource/static/**", "demo://resource/dynamic/text/*"]
      - prompts: [everything__simple-prompt, everything__args-prompt]
agents:
  A: {{scopes: [demo]}}
"""


@dataclass
class Session:
    client: Client
    everything: Recorded
    era: str
    sampled: list[CreateMessageRequestParams] = field(default_factory=list)
    elicited: list[ElicitRequestParams] = field(default_factory=list)
    logs: list[LoggingMessageNotificationParams] = field(default_factory=list)

    async def call(self, tool: str, arguments: dict[str, Any] | None = None, **options: Any) -> Any:
        return await self.client.call_tool(f"everything__{tool}", arguments or {}, **options)

    async def tool_names(self) -> set[str]:
        return {tool.name for tool in (await self.client.list_tools()).tools}


@asynccontextmanager
async def start(config: FirewallConfig, era: str) -> AsyncIterator[Session]:
    session = Session(None, config.recorded["everything"], era)  # type: ignore[arg-type]

    async def sampling(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
        session.sampled.append(params)
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="fake says hi"), model="fake"
        )

    async def elicitation(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        session.elicited.append(params)
        return ElicitResult(action="accept", content={"color": "blue"})

    async def logging(params: LoggingMessageNotificationParams) -> None:
        session.logs.append(params)

    async with connect(
        config, mode=era, sampling_callback=sampling, elicitation_callback=elicitation, logging_callback=logging
    ) as client:
        session.client = client
        yield session


def everything_config(tmp_path_factory: pytest.TempPathFactory, sampling: str) -> FirewallConfig:
    config = FirewallConfig(tmp_path_factory.mktemp(f"everything-sampling-{sampling}"))
    config.upstream("everything", node_peer("mcp-server-everything"))
    return config.write(SCOPES.format(sampling=sampling))


@pytest.fixture(scope="module", params=ERAS)
async def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    """Sampling and elicitation allowed; one session per era."""
    async with start(everything_config(tmp_path_factory, sampling="allow"), request.param) as session:
        yield session


@pytest.fixture(scope="module", params=ERAS)
async def no_sampling(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Session]:
    """Sampling denied, elicitation allowed; the client offers both."""
    async with start(everything_config(tmp_path_factory, sampling="deny"), request.param) as session:
        yield session


async def test_progress_notifications_are_relayed_with_the_clients_token(session: Session) -> None:
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total))

    result = await session.call(
        "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
    )

    assert "Long running operation completed" in text_of(result)
    assert progress == [(1, 3), (2, 3), (3, 3)]


async def test_logging_notifications_reach_the_client(session: Session) -> None:
    session.logs.clear()
    assert "Started simulated" in text_of(await session.call("toggle-simulated-logging"))
    try:
        await wait_until_async(lambda: session.logs, within=10)  # one is sent at once, then every 5 s
    finally:
        assert "Stopped simulated" in text_of(await session.call("toggle-simulated-logging"))

    assert session.logs[0].level in {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}
    assert "message" in str(session.logs[0].data)


async def test_an_allowed_sampling_request_reaches_the_clients_callback(session: Session) -> None:
    result = await session.call("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 20})

    assert not result.is_error, text_of(result)
    assert "fake says hi" in text_of(result)
    [asked] = session.sampled[-1:]
    assert "say hi" in str(asked.messages[0].content)


async def test_an_allowed_elicitation_reaches_the_client_and_its_answer_the_server(session: Session) -> None:
    result = await session.call("trigger-elicitation-request")

    assert not result.is_error, text_of(result)
    assert session.elicited, "the client's elicitation callback was not called"
    assert "Favorite Color: blue" in text_of(result)


async def test_structured_content_and_images_reach_the_client_unchanged(session: Session) -> None:
    structured = await session.call("get-structured-content", {"location": "New York"})
    image = await session.call("get-tiny-image")

    upstream_results = {m["id"]: m["result"] for m in session.everything.sent() if "result" in m}
    calls = {c["params"]["name"]: c["id"] for c in session.everything.tool_calls()}
    original_structured = upstream_results[calls["get-structured-content"]]
    original_image = upstream_results[calls["get-tiny-image"]]

    assert structured.structured_content == original_structured["structuredContent"]
    assert [c.model_dump(by_alias=True, exclude_none=True) for c in structured.content] == original_structured[
        "content"
    ]
    [sent_image] = [c for c in original_image["content"] if c["type"] == "image"]
    [got_image] = [c for c in image.content if isinstance(c, ImageContent)]
    assert (got_image.data, got_image.mime_type) == (sent_image["data"], sent_image["mimeType"])
    assert len(image.content) == len(original_image["content"])


async def test_resources_and_templates_are_listed_and_read_as_granted(session: Session) -> None:
    resources = {r.uri for r in (await session.client.list_resources()).resources}
    templates = {t.uri_template for t in (await session.client.list_resource_templates()).resource_templates}

    assert "demo://resource/static/document/architecture.md" in resources
    assert templates == {"demo://resource/dynamic/text/{resourceId}"}  # the blob template is not granted
    static = await session.client.read_resource("demo://resource/static/document/architecture.md")
    dynamic = await session.client.read_resource("demo://resource/dynamic/text/7")
    assert isinstance(static.contents[0], TextResourceContents) and static.contents[0].text
    assert isinstance(dynamic.contents[0], TextResourceContents) and "Resource 7" in dynamic.contents[0].text


async def test_a_resource_outside_the_grant_answers_like_one_that_does_not_exist(session: Session) -> None:
    errors = {}
    for uri in ("demo://resource/dynamic/blob/1", "demo://resource/no/such/thing"):
        with pytest.raises(MCPError) as caught:
            await session.client.read_resource(uri)
        errors[uri] = (caught.value.error.code, caught.value.error.message.replace(uri, "<uri>"))

    assert len(set(errors.values())) == 1 and next(iter(errors.values()))[0] == -32002
    assert not [m for m in session.everything.received() if "blob" in str((m.get("params") or {}).get("uri", ""))]


async def test_granted_prompts_are_listed_and_rendered(session: Session) -> None:
    prompts = {p.name for p in (await session.client.list_prompts()).prompts}
    rendered = await session.client.get_prompt("everything__args-prompt", {"city": "Paris"})

    assert prompts == {"everything__simple-prompt", "everything__args-prompt"}
    assert isinstance(rendered.messages[0].content, TextContent)
    assert rendered.messages[0].content.text == "What's weather in Paris?"


async def test_a_prompt_outside_the_grant_answers_like_one_that_does_not_exist(session: Session) -> None:
    errors = {}
    for name in ("everything__resource-prompt", "everything__no-such-prompt"):
        with pytest.raises(MCPError) as caught:
            await session.client.get_prompt(name, {"resourceType": "Text", "resourceId": "1"})
        errors[name] = (caught.value.error.code, caught.value.error.message.replace(name, "<prompt>"))

    assert len(set(errors.values())) == 1 and next(iter(errors.values()))[0] == -32602


async def test_a_tool_nobody_was_granted_is_not_listed(session: Session) -> None:
    names = await session.tool_names()

    assert "everything__get-env" not in names  # it returns the server's environment: never unreviewed
    assert {"everything__echo", "everything__trigger-sampling-request"} <= names


async def test_denied_sampling_is_never_offered_upstream_so_its_tool_does_not_exist(no_sampling: Session) -> None:
    names = await no_sampling.tool_names()

    assert "everything__trigger-sampling-request" not in names
    assert "everything__trigger-elicitation-request" in names  # elicitation stays allowed
    [initialize] = [m for m in no_sampling.everything.received() if m.get("method") == "initialize"]
    assert "sampling" not in initialize["params"]["capabilities"]
    assert "elicitation" in initialize["params"]["capabilities"]
    upstream_tools = {t["name"] for m in no_sampling.everything.sent() for t in m.get("result", {}).get("tools", [])}
    assert "trigger-sampling-request" not in upstream_tools


async def test_denied_sampling_never_reaches_the_clients_callback(no_sampling: Session) -> None:
    with pytest.raises(MCPError) as caught:
        await no_sampling.call("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 20})

    assert caught.value.error.code == -32602
    assert no_sampling.sampled == []
    assert not [m for m in no_sampling.everything.sent() if m.get("method") == "sampling/createMessage"]
