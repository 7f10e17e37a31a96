"""Export as configured by `telemetry:` and OTEL_*: a real OTLP/HTTP exporter sending to a stdlib receiver here.

The receiver decodes `ExportTraceServiceRequest` (opentelemetry-proto), so these tests see exactly what a
collector (or Phoenix) would receive: the agent's trace continued, the upstream's traceparent in the same
trace, and a collector that is down or slow never slowing a call.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from support.harness import firewall
from support.servers import rich

from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.config.model import Audit, Telemetry
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.telemetry_setup import ExportSettings, TelemetrySetupError, export_settings, start_observability

pytestmark = pytest.mark.anyio

SCOPES = """\
scopes:
  reader:
    allow:
      - tools: [rich__weather]
agents:
  tester:
    scopes: [reader]
"""
AGENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
AGENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{AGENT_TRACE}-{AGENT_SPAN}-01"


def compiled(tmp_path: Path) -> Policy:
    path = tmp_path / "scopes.yaml"
    path.write_text(SCOPES, encoding="utf-8")
    return compile_policy(load_scope_files([path], upstreams=["rich"]), upstreams=["rich"])


@dataclass
class Collector:
    url: str
    spans: list[ProtoSpan] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    metric_names: set[str] = field(default_factory=set)
    paths: list[str] = field(default_factory=list)
    delay_s: float = 0.0


def _values(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:
        assert isinstance(kv, KeyValue)
        out[kv.key] = getattr(kv.value, kv.value.WhichOneof("value"))
    return out


@pytest.fixture
def collector() -> Iterator[Collector]:
    received = Collector(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            time.sleep(received.delay_s)
            with lock:
                received.paths.append(self.path)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource_spans in request.resource_spans:
                        received.resources.append(_values(resource_spans.resource.attributes))
                        for scope_spans in resource_spans.scope_spans:
                            received.spans.extend(scope_spans.spans)
                elif self.path == "/v1/metrics":
                    metrics = ExportMetricsServiceRequest.FromString(body)
                    for resource_metrics in metrics.resource_metrics:
                        for scope_metrics in resource_metrics.scope_metrics:
                            received.metric_names.update(m.name for m in scope_metrics.metrics)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now: connections are refused


async def test_spans_reach_an_otlp_collector_in_the_agents_trace_and_the_upstream_joins_it(
    tmp_path: Path, collector: Collector
) -> None:
    telemetry = Telemetry(exporter="otlp", endpoint=collector.url)
    observability = start_observability(telemetry, Audit(path=str(tmp_path / "audit.jsonl")), environ={})
    try:
        async with firewall(
            {"rich": rich},
            gate=compiled(tmp_path),
            agent="tester",
            session_options={"observer": observability.observer},
        ) as fw:
            await fw.client.call_tool("rich__weather", {"city": "Oslo"}, meta={"traceparent": TRACEPARENT})
            [sent] = fw.recorders["rich"].calls()
    finally:
        observability.shutdown()
    by_name = {span.name: span for span in collector.spans}
    server, client = by_name["tools/call rich__weather"], by_name["tools/call weather"]
    assert server.trace_id.hex() == AGENT_TRACE == client.trace_id.hex()
    assert server.parent_span_id.hex() == AGENT_SPAN
    assert client.parent_span_id == server.span_id
    assert server.kind == ProtoSpan.SPAN_KIND_SERVER and client.kind == ProtoSpan.SPAN_KIND_CLIENT
    upstream_traceparent = sent["params"]["_meta"]["traceparent"]
    assert upstream_traceparent.split("-")[1:3] == [AGENT_TRACE, client.span_id.hex()]
    attributes = _values(server.attributes)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert attributes["mcp_firewall.audit.hash"] == audit[0]["hash"]
    assert attributes["mcp_firewall.decision"] == "allow"
    assert "session tester" in by_name
    assert collector.resources[0]["service.name"] == "mcp-firewall"
    assert {"mcp.server.operation.duration", "mcp.client.operation.duration", "mcp_firewall.decisions"} <= (
        collector.metric_names
    )
    assert set(collector.paths) == {"/v1/traces", "/v1/metrics"}


@pytest.mark.parametrize("failure", ["down", "slow"])
async def test_a_collector_that_is_down_or_slow_never_slows_a_call_and_losses_are_reported(
    tmp_path: Path, collector: Collector, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    if failure == "down":
        endpoint = f"http://127.0.0.1:{_closed_port()}"
    else:
        endpoint, collector.delay_s = collector.url, 3.0
    telemetry = Telemetry(exporter="otlp", endpoint=endpoint)
    observability = start_observability(telemetry, environ={"OTEL_BSP_SCHEDULE_DELAY": "10"}, export_timeout_s=0.3)
    slowest = 0.0
    try:
        async with firewall(
            {"rich": rich},
            gate=compiled(tmp_path),
            agent="tester",
            session_options={"observer": observability.observer},
        ) as fw:
            for _ in range(5):
                started = time.perf_counter()
                await fw.client.call_tool("rich__weather", {"city": "Oslo"})
                slowest = max(slowest, time.perf_counter() - started)
                await anyio.sleep(0.05)  # let the exporter thread try (and fail) while calls go on
    finally:
        with caplog.at_level(logging.WARNING, logger="mcp_firewall"):
            started = time.perf_counter()
            observability.shutdown(budget_s=0.5)
            shutdown_s = time.perf_counter() - started
    assert slowest < 0.25  # the exporter's own timeout is 0.3 s per attempt; the collector's delay is 3 s
    assert shutdown_s < 2.5
    exporter = observability.span_exporter
    assert exporter is not None and exporter.handed >= 10 and exporter.exported == 0
    assert exporter.failed + exporter.dropped == exporter.handed
    assert any("spans were not exported" in r.getMessage() for r in caplog.records)


# -- configuration ---------------------------------------------------------------------------------------


def test_otel_variables_apply_where_the_firewall_file_is_silent() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": "edge-firewall",
    }
    settings = export_settings(Telemetry(), environ)
    assert (settings.traces, settings.metrics, settings.protocol, settings.service_name) == (
        "otlp",
        "otlp",
        "grpc",
        "edge-firewall",
    )
    assert settings.endpoint is None  # the exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself


def test_keys_written_in_the_firewall_file_win_over_otel_variables() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "x"}
    written = Telemetry(exporter="otlp", endpoint="http://c:4318", protocol="http", service_name="fw")
    settings = export_settings(written, environ)
    assert (settings.traces, settings.protocol, settings.endpoint, settings.service_name) == (
        "otlp",
        "http",
        "http://c:4318",
        "fw",
    )
    assert export_settings(Telemetry(exporter="none"), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}).traces == "none"


@pytest.mark.parametrize(
    ("environ", "traces", "metrics"),
    [
        ({}, "none", "none"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console", "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none"}, "otlp", "none"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "none", "none"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"}, "otlp", "otlp"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, "none", "none"),
    ],
)
def test_otel_exporter_variables(environ: dict[str, str], traces: str, metrics: str) -> None:
    settings = export_settings(Telemetry(), environ)
    assert (settings.traces, settings.metrics) == (traces, metrics)


def test_a_short_export_timeout_unless_otel_sets_one() -> None:
    assert export_settings(Telemetry(), {}).export_timeout_s == 2.0
    assert export_settings(Telemetry(), {"OTEL_EXPORTER_OTLP_TIMEOUT": "5"}).export_timeout_s is None


def test_nothing_configured_means_no_observer() -> None:
    observability = start_observability(Telemetry(), environ={})
    assert observability.observer is None and observability.tracer_provider is None
    observability.shutdown()


def test_grpc_without_its_package_is_refused_at_start() -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the gRPC exporter is installed here")
    with pytest.raises(TelemetrySetupError, match="opentelemetry-exporter-otlp-proto-grpc"):
        start_observability(Telemetry(exporter="otlp", protocol="grpc"), environ={})


async def test_jsonl_export_writes_spans_and_metrics_as_lines_only_the_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    observability = start_observability(Telemetry(exporter="jsonl", path=str(path)), environ={})
    async with firewall(
        {"rich": rich}, gate=compiled(tmp_path), agent="tester", session_options={"observer": observability.observer}
    ) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
    observability.shutdown()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    names = {line["name"] for line in lines if "name" in line}
    assert {"tools/call rich__weather", "tools/call weather", "session tester"} <= names
    assert any("resource_metrics" in line for line in lines)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_console_export_goes_to_stderr_never_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    observability = start_observability(Telemetry(exporter="console"), environ={"OTEL_METRICS_EXPORTER": "none"})
    async with firewall(
        {"rich": rich}, gate=compiled(tmp_path), agent="tester", session_options={"observer": observability.observer}
    ) as fw:
        await fw.client.call_tool("rich__weather", {"city": "Oslo"})
    observability.shutdown()
    out, err = capfd.readouterr()
    assert out == ""
    assert "tools/call rich__weather" in err


def test_export_settings_are_plain_values() -> None:
    assert ExportSettings() == export_settings(Telemetry(), {})
