"""The proxy core in memory: an SDK client ↔ firewall ↔ SDK upstream servers, both protocol eras."""

from __future__ import annotations

from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import MCPError
from support.harness import eventually, firewall
from support.servers import lowlevel, rich, tool

from mcp_firewall.policy.decision import Decision
from mcp_firewall.policy.view import OpenGate, OpenView

pytestmark = pytest.mark.anyio
ERAS = pytest.mark.parametrize("mode", ["legacy", "auto"])


@ERAS
async def test_tools_of_every_upstream_are_listed_under_their_upstream_prefix(mode: str) -> None:
    servers = {"alpha": lowlevel([tool("echo"), tool("shout")]), "beta": lowlevel([tool("echo")])}
    async with firewall(servers, mode=mode) as fw:
        listed = await fw.client.list_tools()
    assert [t.name for t in listed.tools] == ["alpha__echo", "alpha__shout", "beta__echo"]
    assert listed.tools[0].description == "The echo tool."


@ERAS
async def test_a_call_reaches_its_upstream_under_the_upstreams_own_name_with_arguments_and_meta(mode: str) -> None:
    servers = {"alpha": lowlevel([tool("echo")]), "beta": lowlevel([tool("echo")])}
    async with firewall(servers, mode=mode) as fw:
        result = await fw.client.call_tool("beta__echo", {"text": "hi"}, meta={"custom/key": "v"})
        assert fw.recorders["alpha"].calls() == []
        [sent] = fw.recorders["beta"].calls()
    assert result.content[0].text == "echo:hi"  # type: ignore[union-attr]
    assert sent["params"]["name"] == "echo"
    assert sent["params"]["arguments"] == {"text": "hi"}
    assert sent["params"]["_meta"]["custom/key"] == "v"
    assert not any(key.startswith("io.modelcontextprotocol/") for key in sent["params"]["_meta"])


@ERAS
async def test_results_come_back_unchanged_structured_images_embedded_resources_and_errors(mode: str) -> None:
    async with firewall({"rich": rich}, mode=mode) as fw:
        weather = await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        picture = await fw.client.call_tool("rich__picture", {})
        failed = await fw.client.call_tool("rich__fail", {"reason": "broken on purpose"})
    assert weather.structured_content == {
        "result": {"city": "Oslo", "temperature": 21}
    } or weather.structured_content == {
        "city": "Oslo",
        "temperature": 21,
    }
    assert [c.type for c in picture.content] == ["image", "resource"]
    assert isinstance(picture.content[0], types.ImageContent) and picture.content[0].mime_type == "image/png"
    assert failed.is_error and "broken on purpose" in failed.content[0].text  # type: ignore[union-attr]


@ERAS
async def test_an_unknown_tool_gets_the_same_error_as_from_a_server_without_it(mode: str) -> None:
    async with firewall({"alpha": lowlevel([tool("echo")])}, mode=mode) as fw:
        with pytest.raises(MCPError) as caught:
            await fw.client.call_tool("alpha__missing", {})
        assert fw.recorders["alpha"].calls() == []
    assert caught.value.error.code == -32602
    assert caught.value.error.message == "Unknown tool: alpha__missing"


async def test_every_page_of_an_upstreams_tool_list_is_fetched() -> None:
    tools = [tool(f"t{i:02d}") for i in range(25)]
    async with firewall({"paged": lowlevel(tools, page_size=10)}) as fw:
        listed = await fw.client.list_tools()
    assert len(listed.tools) == 25
    assert listed.next_cursor is None


async def test_unprefixed_upstreams_keep_tool_names_and_colliding_names_are_hidden() -> None:
    servers = {"alpha": lowlevel([tool("echo"), tool("only_alpha")]), "beta": lowlevel([tool("echo")])}
    async with firewall(servers, prefix={"alpha": False, "beta": False}) as fw:
        listed = await fw.client.list_tools()
        assert [t.name for t in listed.tools] == ["only_alpha"]
        with pytest.raises(MCPError):
            await fw.client.call_tool("echo", {"text": "x"})
        assert fw.recorders["alpha"].calls() == [] and fw.recorders["beta"].calls() == []


@ERAS
async def test_progress_notifications_are_relayed_with_the_agents_own_token(mode: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with firewall({"rich": rich}, mode=mode) as fw:
        result = await fw.client.call_tool("rich__count", {"n": 3}, progress_callback=on_progress)
    assert result.content[0].text == "counted to 3"  # type: ignore[union-attr]
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_a_cancelled_call_is_cancelled_upstream_and_never_answered() -> None:
    async with firewall({"rich": rich}) as fw:
        with anyio.move_on_after(0.3):
            await fw.client.call_tool("rich__wait", {"seconds": 30})
        await eventually(lambda: "notifications/cancelled" in fw.recorders["rich"].methods())
        cancelled = fw.recorders["rich"].calls("notifications/cancelled")[0]
        call = fw.recorders["rich"].calls()[0]
        assert cancelled["params"]["requestId"] == call["id"]
        # the session goes on
        assert (await fw.client.call_tool("rich__weather", {"city": "Rome"})).is_error is False


@ERAS
async def test_resources_and_templates_are_routed_by_uri(mode: str) -> None:
    async with firewall({"rich": rich, "other": lowlevel([tool("echo")])}, mode=mode) as fw:
        resources = await fw.client.list_resources()
        templates = await fw.client.list_resource_templates()
        static = await fw.client.read_resource("rich://static")
        item = await fw.client.read_resource("rich://items/42")
        with pytest.raises(MCPError) as caught:
            await fw.client.read_resource("rich://nowhere/at/all")
    assert [r.uri for r in resources.resources] == ["rich://static"]
    assert [t.uri_template for t in templates.resource_templates] == ["rich://items/{item}"]
    assert static.contents[0].text == "static text"  # type: ignore[union-attr]
    assert item.contents[0].text == "item 42"  # type: ignore[union-attr]
    assert caught.value.error.code == -32002


@ERAS
async def test_prompts_are_prefixed_and_routed(mode: str) -> None:
    async with firewall({"rich": rich}, mode=mode) as fw:
        prompts = await fw.client.list_prompts()
        got = await fw.client.get_prompt("rich__greet", {"name": "Ada"})
        sent = fw.recorders["rich"].calls("prompts/get")[0]
    assert [p.name for p in prompts.prompts] == ["rich__greet"]
    assert sent["params"]["name"] == "greet"
    assert "Hello Ada" in got.messages[0].content.text  # type: ignore[union-attr]


async def _answer_elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "blue"})


async def _answer_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="short"), model="m")


@ERAS
async def test_elicitation_and_sampling_reach_the_agents_client_in_either_era(mode: str) -> None:
    async with firewall(
        {"rich": rich}, mode=mode, elicitation_callback=_answer_elicitation, sampling_callback=_answer_sampling
    ) as fw:
        asked = await fw.client.call_tool("rich__ask", {"question": "colour?"})
        summary = await fw.client.call_tool("rich__summarize", {"text": "long text"})
    assert asked.content[0].text == "answered: blue"  # type: ignore[union-attr]
    assert summary.content[0].text == "summary: short"  # type: ignore[union-attr]


async def test_a_modern_agent_receives_a_legacy_upstreams_elicitation_as_input_required() -> None:
    async with firewall({"rich": rich}, mode="auto", elicitation_callback=_answer_elicitation) as fw:
        await fw.client.call_tool("rich__ask", {"question": "colour?"})
        results = [m.get("result", {}) for m in fw.downstream if "result" in m]
        methods = fw.recorders["rich"].methods()
    assert any(r.get("resultType") == "input_required" for r in results)
    assert methods.count("tools/call") == 1  # the upstream call was parked, not repeated


class _FlippingGate(OpenGate):
    """Allows each tool once, then denies it: a policy that tightened between two legs of one call."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def view(self, agent: str, catalog: Any) -> Any:
        gate = self
        inner = OpenView(catalog)

        class View(OpenView):
            def check_tool(self, name: str, arguments: Any) -> Any:
                decision, route = inner.check_tool(name, arguments)
                if name in gate.seen:
                    return Decision("deny", reason="tightened"), route
                gate.seen.add(name)
                return decision, route

        return View(catalog)


async def test_a_modern_retry_is_decided_again_and_a_refused_retry_cancels_the_parked_upstream_call() -> None:
    async with firewall(
        {"rich": rich}, gate=_FlippingGate(), mode="auto", elicitation_callback=_answer_elicitation
    ) as fw:
        result = await fw.client.call_tool("rich__ask", {"question": "colour?"})
        await eventually(lambda: "notifications/cancelled" in fw.recorders["rich"].methods())
    assert result.is_error
    assert result.content[0].text.startswith("Denied by mcp-firewall: tightened")  # type: ignore[union-attr]
