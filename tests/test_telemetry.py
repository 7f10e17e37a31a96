"""Spans, metrics and audit records of real requests: SDK client ↔ firewall (with a compiled policy) ↔ SDK upstream.

Spans go to an `InMemorySpanExporter` through a provider built here and injected (no global provider).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from support.harness import firewall
from support.servers import rich

from mcp_firewall.audit import AuditLog, read_records
from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.policy.decision import Decision
from mcp_firewall.proxy.observe import Observer, RequestInfo
from mcp_firewall.telemetry import Recorder, attributes

pytestmark = pytest.mark.anyio
ERAS = pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])

SCOPES = """\
servers:
  rich:
    read: [weather, fail, picture, count]
scopes:
  reader:
    allow:
      - tools: [rich__weather]
        args:
          city: {enum: [Oslo, Bergen]}
      - tools: [rich__fail]
      - prompts: [rich__greet]
      - resources: ["rich://static"]
deny:
  - tools: [rich__picture]
    reason: no pictures
agents:
  tester:
    scopes: [reader]
"""
AGENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{AGENT_TRACE}-{AGENT_SPAN}-01"


def compiled(tmp_path: Path, text: str = SCOPES) -> Policy:
    path = tmp_path / "scopes.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_policy(load_scope_files([path], upstreams=["rich"]), upstreams=["rich"])


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    recorder: Recorder
    audit_path: Path | None = None

    def finished(self) -> list[ReadableSpan]:
        self.recorder.shutdown()  # ends the session spans
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.finished() if s.name == name]
        return span

    def audit(self) -> list[dict[str, Any]]:
        assert self.audit_path is not None
        return [dict(record) for record in read_records(self.audit_path)]


def make_telemetry(tmp_path: Path, *, audit: bool = True, **options: Any) -> Telemetry:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    path = tmp_path / "audit.jsonl" if audit else None
    log = AuditLog.open(path, fsync="never") if path is not None else None
    recorder = Recorder(tracer=provider.get_tracer("test"), meter=meter, audit=log, **options)
    return Telemetry(spans, reader, recorder, path)


@pytest.fixture
def telemetry(tmp_path: Path) -> Iterator[Telemetry]:
    yield make_telemetry(tmp_path)


def observed(recorder: Observer) -> dict[str, Any]:
    return {"observer": recorder}


def watched(tmp_path: Path, recorder: Observer, mode: str = "legacy") -> Any:
    """The firewall in front of the `rich` server, deciding with the test policy, recorded by `recorder`."""
    return firewall(
        {"rich": rich}, gate=compiled(tmp_path), agent="tester", mode=mode, session_options=observed(recorder)
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- decided requests ----------------------------------------------------------------------------------


@ERAS
async def test_an_allowed_call_has_a_server_span_with_every_attribute_and_a_client_span_under_it(
    tmp_path: Path, telemetry: Telemetry, mode: str, version: str
) -> None:
    async with watched(tmp_path, telemetry.recorder, mode) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        session_id = fw.session.session_id
        [sent] = fw.recorders["rich"].calls()
    server = telemetry.named("tools/call rich__weather")
    client = telemetry.named("tools/call weather")
    [record] = [r for r in telemetry.audit() if r["kind"] == "decision"]
    assert server.kind is SpanKind.SERVER and client.kind is SpanKind.CLIENT
    assert attrs(server) == {
        "mcp.method.name": "tools/call",
        "mcp.session.id": session_id,
        "session.id": session_id,
        "mcp.protocol.version": version,
        "jsonrpc.request.id": attrs(server)["jsonrpc.request.id"],
        "gen_ai.tool.name": "rich__weather",
        "gen_ai.operation.name": "execute_tool",
        "network.transport": "pipe",
        "openinference.span.kind": "TOOL",
        "mcp_firewall.agent": "tester",
        "mcp_firewall.decision": "allow",
        "mcp_firewall.scope": "reader",
        "mcp_firewall.rule": attrs(server)["mcp_firewall.rule"],
        "mcp_firewall.upstream": "rich",
        "mcp_firewall.audit.hash": record["hash"],
    }
    assert attrs(server)["jsonrpc.request.id"].isdigit()
    assert attrs(server)["mcp_firewall.rule"].endswith(tuple(f":{n}:9" for n in range(1, 20)))
    assert server.status.status_code is StatusCode.UNSET
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert attrs(client) == {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "weather",
        "gen_ai.operation.name": "execute_tool",
        "openinference.span.kind": "TOOL",
        "mcp_firewall.upstream": "rich",
    }
    traceparent = sent["params"]["_meta"]["traceparent"]
    assert traceparent.startswith(f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}-")
    assert record["trace_id"] == f"{server.context.trace_id:032x}"


@ERAS
async def test_a_denied_call_is_an_error_span_with_the_reason_and_is_never_forwarded(
    tmp_path: Path, telemetry: Telemetry, mode: str, version: str
) -> None:
    async with watched(tmp_path, telemetry.recorder, mode) as fw:
        result = await fw.client.call_tool("rich__weather", {"city": "Paris"})
        assert fw.recorders["rich"].calls() == []
    assert result.is_error
    spans = telemetry.finished()
    [server] = [s for s in spans if s.name == "tools/call rich__weather"]
    assert not [s for s in spans if s.kind is SpanKind.CLIENT]
    reason = attrs(server)["mcp_firewall.reason"]
    assert "Paris" in reason  # the value that failed; not secret, so kept
    assert attrs(server)["mcp_firewall.decision"] == "deny"
    assert attrs(server)["mcp_firewall.argument"] == "city"
    assert attrs(server)["mcp_firewall.constraint"] == "enum"
    assert attrs(server)["error.type"] == "denied"
    assert attrs(server)["mcp.protocol.version"] == version
    assert "mcp_firewall.scope" not in attrs(server)
    assert server.status.status_code is StatusCode.ERROR and server.status.description == reason
    records = telemetry.audit()
    assert [(r["kind"], r["decision"], r["reason"]) for r in records] == [("decision", "deny", reason)]
    assert attrs(server)["mcp_firewall.audit.hash"] == records[0]["hash"]


@ERAS
@pytest.mark.parametrize("tool", ["rich__picture", "rich__count", "rich__nonexistent"])
async def test_a_hidden_call_is_an_error_span_that_never_reaches_the_upstream(
    tmp_path: Path, telemetry: Telemetry, mode: str, version: str, tool: str
) -> None:
    async with watched(tmp_path, telemetry.recorder, mode) as fw:
        with pytest.raises(MCPError) as caught:
            await fw.client.call_tool(tool, {})
        assert fw.recorders["rich"].calls() == []
    assert caught.value.error.code == -32602
    server = telemetry.named(f"tools/call {tool}")
    assert attrs(server)["mcp_firewall.decision"] == "hidden"
    assert attrs(server)["mcp_firewall.reason"]
    assert attrs(server)["error.type"] == "hidden"
    assert attrs(server)["rpc.response.status_code"] == "-32602"
    assert server.status.status_code is StatusCode.ERROR
    assert [(r["kind"], r["decision"], r["tool"]) for r in telemetry.audit()] == [("decision", "hidden", tool)]


@ERAS
async def test_prompts_and_resources_carry_their_own_attributes(
    tmp_path: Path, telemetry: Telemetry, mode: str, version: str
) -> None:
    async with watched(tmp_path, telemetry.recorder, mode) as fw:
        await fw.client.get_prompt("rich__greet", {"name": "Ada"})
        await fw.client.read_resource("rich://static")
        with pytest.raises(MCPError):
            await fw.client.read_resource("rich://items/1")
    spans = telemetry.finished()
    prompt = next(s for s in spans if s.name == "prompts/get rich__greet" and s.kind is SpanKind.SERVER)
    assert attrs(prompt)["gen_ai.prompt.name"] == "rich__greet"
    assert attrs(prompt)["openinference.span.kind"] == "CHAIN"
    assert "gen_ai.operation.name" not in attrs(prompt)
    assert any(s.name == "prompts/get greet" and s.kind is SpanKind.CLIENT for s in spans)
    reads = [s for s in spans if s.name == "resources/read" and s.kind is SpanKind.SERVER]
    assert [(attrs(s)["mcp.resource.uri"], attrs(s)["mcp_firewall.decision"]) for s in reads] == [
        ("rich://static", "allow"),
        ("rich://items/1", "hidden"),
    ]
    assert attrs(reads[1])["rpc.response.status_code"] == "-32002"
    records = telemetry.audit()
    assert [(r["kind"], r.get("prompt") or r.get("uri")) for r in records] == [
        ("decision", "rich__greet"),
        ("outcome", "rich__greet"),
        ("decision", "rich://static"),
        ("outcome", "rich://static"),
        ("decision", "rich://items/1"),
    ]


async def test_an_error_result_from_the_upstream_marks_both_spans_and_the_outcome(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        result = await fw.client.call_tool("rich__fail", {"reason": "broken"})
    assert result.is_error
    for name in ("tools/call rich__fail", "tools/call fail"):
        span = telemetry.named(name)
        assert attrs(span)["error.type"] == "tool_error"
        assert span.status.status_code is StatusCode.ERROR
    outcome = telemetry.audit()[-1]
    assert (outcome["kind"], outcome["status"], outcome["tool"]) == ("outcome", "error", "rich__fail")
    assert outcome["duration_ms"] >= 0


# -- trace context ---------------------------------------------------------------------------------------


@ERAS
async def test_the_agents_trace_is_continued_and_the_upstream_joins_it(
    tmp_path: Path, telemetry: Telemetry, mode: str, version: str
) -> None:
    meta = {"traceparent": TRACEPARENT, "tracestate": "rojo=00f067aa0ba902b7"}
    async with watched(tmp_path, telemetry.recorder, mode) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"}, meta=meta)
        [sent] = fw.recorders["rich"].calls()
    server = telemetry.named("tools/call rich__weather")
    client = telemetry.named("tools/call weather")
    session = next(s for s in telemetry.finished() if s.name == "session tester")
    assert f"{server.context.trace_id:032x}" == AGENT_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == AGENT_SPAN and server.parent.is_remote
    assert [link.context.span_id for link in server.links] == [session.context.span_id]
    forwarded = sent["params"]["_meta"]
    assert forwarded["traceparent"] == f"00-{AGENT_TRACE}-{client.context.span_id:016x}-01"  # the agent's flags
    assert forwarded["tracestate"] == "rojo=00f067aa0ba902b7"
    assert telemetry.audit()[0]["trace_id"] == AGENT_TRACE


@pytest.mark.parametrize("bad", [12, "garbage", "00-zz-yy-01", {"x": 1}, f"00-{'0' * 32}-{AGENT_SPAN}-01"])
async def test_an_invalid_traceparent_is_ignored(tmp_path: Path, telemetry: Telemetry, bad: Any) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"}, meta={"traceparent": bad})
    server = telemetry.named("tools/call rich__weather")
    session = next(s for s in telemetry.finished() if s.name == "session tester")
    assert server.parent is not None and server.parent.span_id == session.context.span_id


async def test_a_session_is_one_trace_of_its_requests_under_an_agent_span(tmp_path: Path, telemetry: Telemetry) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.list_tools()
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        session_id = fw.session.session_id
    spans = telemetry.finished()
    [session] = [s for s in spans if s.name == "session tester"]
    assert attrs(session)["openinference.span.kind"] == "AGENT"
    assert attrs(session)["mcp.session.id"] == session_id
    assert attrs(session)["mcp.protocol.version"] == "2025-11-25"
    assert {s.context.trace_id for s in spans} == {session.context.trace_id}
    names = {s.name for s in spans if s.parent is not None and s.parent.span_id == session.context.span_id}
    assert {"initialize", "tools/list", "tools/call rich__weather"} <= names
    listing = telemetry.named("tools/list")
    assert "mcp_firewall.decision" not in attrs(listing)
    assert attrs(listing)["openinference.span.kind"] == "CHAIN"


async def test_the_session_span_ends_when_the_agents_session_ends(tmp_path: Path, telemetry: Telemetry) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.list_tools()
    ended = [s.name for s in telemetry.spans.get_finished_spans()]  # no recorder.shutdown() here
    assert "session tester" in ended


# -- metrics -------------------------------------------------------------------------------------------


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_durations_reach_the_metrics_sdk_between_requests_not_during_them(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        queued = telemetry.recorder._instruments._pending  # type: ignore[union-attr]
        assert queued  # recorded on the request path: queued only
        with anyio.move_on_after(0.3):
            await telemetry.recorder.run()  # the transport runs this in its task group
        assert not queued


async def test_durations_and_decisions_are_measured_as_the_conventions_define(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        await fw.client.call_tool("rich__weather", {"city": "Paris"})
        with pytest.raises(MCPError):
            await fw.client.call_tool("rich__made_up_name", {})
    telemetry.recorder.shutdown()
    points = _points(telemetry.metrics)
    decisions = {
        (p.attributes["mcp_firewall.decision"], p.attributes.get("gen_ai.tool.name")): p.value
        for p in points["mcp_firewall.decisions"]
    }
    assert decisions == {("allow", "rich__weather"): 1, ("deny", "rich__weather"): 1, ("hidden", None): 1}
    allowed = next(p for p in points["mcp_firewall.decisions"] if p.attributes["mcp_firewall.decision"] == "allow")
    assert dict(allowed.attributes) == {
        "mcp_firewall.agent": "tester",
        "mcp_firewall.decision": "allow",
        "mcp_firewall.upstream": "rich",
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "rich__weather",
    }
    server = [p for p in points["mcp.server.operation.duration"] if p.attributes["mcp.method.name"] == "tools/call"]
    assert sorted(p.attributes.get("error.type", "") for p in server) == ["", "denied", "hidden"]
    assert list(server[0].explicit_bounds) == list(attributes.DURATION_BUCKETS)
    [client] = points["mcp.client.operation.duration"]
    assert client.count == 1 and client.attributes["mcp_firewall.upstream"] == "rich"
    assert client.attributes["gen_ai.operation.name"] == "execute_tool"
    [session] = points["mcp.server.session.duration"]
    assert session.count == 1


# -- audit ---------------------------------------------------------------------------------------------


async def test_a_call_whose_decision_cannot_be_audited_is_refused(tmp_path: Path) -> None:
    telemetry = make_telemetry(tmp_path)
    assert telemetry.recorder._audit is not None
    telemetry.recorder._audit.close()  # every record now fails to write
    async with watched(tmp_path, telemetry.recorder) as fw:
        with pytest.raises(MCPError) as caught:
            await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        assert fw.recorders["rich"].calls() == []
    assert "audit log" in caught.value.error.message
    server = telemetry.named("tools/call rich__weather")
    assert attrs(server)["error.type"] == "audit_write_error"
    assert server.status.status_code is StatusCode.ERROR


async def test_with_on_failure_allow_an_unauditable_call_goes_ahead(tmp_path: Path) -> None:
    telemetry = make_telemetry(tmp_path, audit_on_failure="allow")
    assert telemetry.recorder._audit is not None
    telemetry.recorder._audit.close()
    async with watched(tmp_path, telemetry.recorder) as fw:
        result = await fw.client.call_tool("rich__weather", {"city": "Oslo"})
        assert len(fw.recorders["rich"].calls()) == 1
    assert not result.is_error
    server = telemetry.named("tools/call rich__weather")
    assert "mcp_firewall.audit.hash" not in attrs(server)
    assert [e.name for e in server.events] == ["mcp_firewall.audit_failed"]


async def test_the_decision_record_is_written_before_the_request_is_forwarded(tmp_path: Path) -> None:
    telemetry = make_telemetry(tmp_path)
    seen_when_forwarding: list[list[str]] = []
    original = telemetry.recorder.forwarding

    def forwarding(context: Any, meta: dict[str, Any]) -> None:
        seen_when_forwarding.append([r["kind"] for r in telemetry.audit()])
        original(context, meta)

    telemetry.recorder.forwarding = forwarding  # type: ignore[method-assign]
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
    assert seen_when_forwarding == [["decision"]]
    assert [r["kind"] for r in telemetry.audit()] == ["decision", "outcome"]


async def test_without_spans_the_audit_log_still_names_the_agents_trace(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit.jsonl", fsync="never")
    recorder = Recorder(audit=log)
    async with watched(tmp_path, recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"}, meta={"traceparent": TRACEPARENT})
        [sent] = fw.recorders["rich"].calls()
    assert sent["params"]["_meta"]["traceparent"] == TRACEPARENT  # passed on unchanged: the upstream joins it
    records = [dict(r) for r in read_records(tmp_path / "audit.jsonl")]
    assert [(r["kind"], r["trace_id"]) for r in records] == [("decision", AGENT_TRACE), ("outcome", AGENT_TRACE)]


def test_a_quarantined_tool_is_audited_and_traced(tmp_path: Path, telemetry: Telemetry) -> None:
    telemetry.recorder.quarantined("rich", "weather", "description changed")
    [record] = telemetry.audit()
    assert (record["decision"], record["upstream"], record["tool"], record["diff"]) == (
        "hidden",
        "rich",
        "weather",
        "description changed",
    )
    [span] = telemetry.finished()
    [event] = span.events
    assert event.name == "mcp_firewall.quarantined"
    assert dict(event.attributes or {})["diff"] == "description changed"


# -- arguments -----------------------------------------------------------------------------------------


async def test_arguments_are_not_recorded_unless_configured(tmp_path: Path, telemetry: Telemetry) -> None:
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
    assert all("mcp_firewall.arguments" not in attrs(s) for s in telemetry.finished())
    assert all("args" not in r for r in telemetry.audit())
    assert "Oslo" not in json.dumps(telemetry.audit())


async def test_recorded_arguments_are_redacted(tmp_path: Path) -> None:
    telemetry = make_telemetry(tmp_path, record_arguments=True)
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
    server = telemetry.named("tools/call rich__weather")
    assert json.loads(attrs(server)["mcp_firewall.arguments"]) == {"city": "Oslo"}
    assert telemetry.audit()[0]["args"] == {"city": "Oslo"}


# -- the recorder on its own ---------------------------------------------------------------------------


def test_with_nothing_to_record_the_recorder_does_nothing() -> None:
    recorder = Recorder()
    info = RequestInfo("a", "s", "2025-11-25", "tools/call", 1, "x__y", "x", {"k": "v"})
    context = recorder.begin(info, Decision("allow", scope="s"))
    meta: dict[str, Any] = {}
    recorder.forwarding(context, meta)
    recorder.end(context)
    assert context is None and meta == {}


def test_end_is_idempotent_and_tolerates_foreign_contexts(telemetry: Telemetry) -> None:
    info = RequestInfo("a", "s", "2025-11-25", "tools/list", 1)
    context = telemetry.recorder.begin(info, None)
    telemetry.recorder.end(context)
    telemetry.recorder.end(context, error_type="cancelled")
    telemetry.recorder.end(None)
    telemetry.recorder.end(object())
    telemetry.recorder.forwarding(None, {})
    listing = telemetry.named("tools/list")
    assert "error.type" not in attrs(listing)


def test_no_attribute_key_is_also_the_prefix_of_another() -> None:
    """Phoenix stores dotted keys nested: `a.b` next to `a.b.c` would collide."""
    keys = [value for name, value in vars(attributes).items() if name.isupper() and isinstance(value, str)]
    keys = [k for k in keys if "." in k and not k.startswith(("mcp.server.", "mcp.client."))]
    keys += ["service.name", "service.version", "openinference.project.name"]
    clashes = [(a, b) for a in keys for b in keys if b.startswith(a + ".")]
    assert clashes == []


async def test_no_exported_key_is_both_a_leaf_and_a_prefix(tmp_path: Path) -> None:
    telemetry = make_telemetry(tmp_path, record_arguments=True)
    async with watched(tmp_path, telemetry.recorder) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"}, meta={"traceparent": TRACEPARENT})
        await fw.client.call_tool("rich__weather", {"city": "Paris"})
        await fw.client.get_prompt("rich__greet", {"name": "Ada"})
    keys = {key for span in telemetry.finished() for key in attrs(span)}
    assert [(a, b) for a in keys for b in keys if b.startswith(a + ".")] == []
