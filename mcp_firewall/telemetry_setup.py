"""OpenTelemetry SDK setup: providers and exporters from the firewall file's `telemetry:` and OTEL_* (SPEC §7).

The only module besides tests that imports `opentelemetry.sdk`. `start_observability` opens the audit
log, builds the tracer and meter providers and returns the proxy's observer; `Observability.shutdown`
flushes and closes everything, bounded in time.

Precedence: a key written in `telemetry:` wins; a key left out takes its OTEL_* variable; then the
default. Spans leave through a `BatchSpanProcessor`, so a collector that is down or slow never holds
up a request: the exporter gives up after a short timeout, and spans that were dropped (queue full,
export failed, or still queued at exit) are counted and reported on stderr at shutdown.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from mcp_firewall import __version__
from mcp_firewall.audit import AuditLog
from mcp_firewall.config.model import Audit, Telemetry
from mcp_firewall.errors import AuditWriteError, FirewallError
from mcp_firewall.proxy.observe import Observer
from mcp_firewall.telemetry import Recorder
from mcp_firewall.telemetry.attributes import TRACER_NAME

__all__ = [
    "CountingSpanExporter",
    "ExportSettings",
    "JsonLinesFile",
    "Observability",
    "TelemetrySetupError",
    "export_settings",
    "start_observability",
]

logger = logging.getLogger(__name__)

EXPORT_TIMEOUT_S = 2.0
SCHEDULE_DELAY_MS = 1000
SHUTDOWN_BUDGET_S = 3.0
_GRPC_TRACES = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
_GRPC_METRICS = "opentelemetry.exporter.otlp.proto.grpc.metric_exporter"
_HTTP_TRACES = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_HTTP_METRICS = "opentelemetry.exporter.otlp.proto.http.metric_exporter"

Exporter = Literal["none", "console", "otlp", "jsonl"]


class TelemetrySetupError(FirewallError):
    """The telemetry configuration cannot be put to work (e.g. gRPC asked for but not installed)."""


@dataclass(frozen=True)
class ExportSettings:
    """Where spans and metrics go, once the firewall file and OTEL_* are combined."""

    traces: Exporter = "none"
    metrics: Exporter = "none"
    protocol: Literal["http", "grpc"] = "http"
    endpoint: str | None = None  # the signal's base URL (http) or host:port (grpc); None: the exporter reads OTEL_*
    path: str | None = None
    service_name: str = "mcp-firewall"
    export_timeout_s: float | None = EXPORT_TIMEOUT_S  # None: OTEL_EXPORTER_OTLP_TIMEOUT decides
    schedule_delay_ms: int | None = SCHEDULE_DELAY_MS  # None: OTEL_BSP_SCHEDULE_DELAY decides


def export_settings(telemetry: Telemetry, environ: Mapping[str, str]) -> ExportSettings:
    """Combine `telemetry:` (keys written win) with the standard OTEL_* variables."""
    written = telemetry.model_fields_set
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ExportSettings()
    traces = telemetry.exporter if "exporter" in written else _env_exporter(environ, "TRACES")
    metrics = traces if "OTEL_METRICS_EXPORTER" not in environ else _env_exporter(environ, "METRICS")
    protocol = telemetry.protocol if "protocol" in written else _env_protocol(environ)
    timeout_set = any(f"OTEL_EXPORTER_OTLP_{s}TIMEOUT" in environ for s in ("", "TRACES_", "METRICS_"))
    service_name = telemetry.service_name
    if "service_name" not in written and environ.get("OTEL_SERVICE_NAME"):
        service_name = environ["OTEL_SERVICE_NAME"]
    return ExportSettings(
        traces=traces,
        metrics=metrics,
        protocol=protocol,
        endpoint=telemetry.endpoint,
        path=telemetry.path,
        service_name=service_name,
        export_timeout_s=None if timeout_set else EXPORT_TIMEOUT_S,
        schedule_delay_ms=None if "OTEL_BSP_SCHEDULE_DELAY" in environ else SCHEDULE_DELAY_MS,
    )


def _first(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.split(",")[0].strip().lower()


def _env_exporter(environ: Mapping[str, str], signal: str) -> Exporter:
    named = _first(environ.get(f"OTEL_{signal}_EXPORTER"))
    if named is None:  # pointing OTEL_EXPORTER_OTLP_ENDPOINT at a collector is enough to turn export on
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        return "otlp" if any(environ.get(name) for name in endpoints) else "none"
    known: dict[str, Exporter] = {"otlp": "otlp", "console": "console", "none": "none"}
    if named in known:
        return known[named]
    logger.warning("OTEL_%s_EXPORTER=%s is not supported (otlp, console or none); not exporting", signal, named)
    return "none"


def _env_protocol(environ: Mapping[str, str]) -> Literal["http", "grpc"]:
    named = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    named = named.strip().lower()
    if named == "grpc":
        return "grpc"
    if named not in ("", "http/protobuf"):
        logger.warning("OTLP protocol %r is not supported; using http/protobuf", named)
    return "http"


# -- exporters ------------------------------------------------------------------------------------------


class CountingSpanExporter(SpanExporter):
    """Wraps the real exporter: counts what was exported and what was lost, never raises, and after
    shutdown has begun gives up at once rather than hold the exit up."""

    def __init__(self, inner: SpanExporter, label: str) -> None:
        self.inner = inner
        self.label = label
        self.handed = 0  # spans given to the batch processor (counted by `_CountingBatchProcessor`)
        self.exported = 0
        self.failed = 0
        self.last_error = ""
        self._deadline: float | None = None
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._lost(len(spans), "shutdown budget exhausted")
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must never reach the firewall
            self._lost(len(spans), f"{type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self._lost(len(spans), "the exporter reported a failure")
        return result

    def _lost(self, count: int, why: str) -> None:
        self.failed += count
        self.last_error = why
        if not self._warned:
            self._warned = True
            logger.warning("telemetry: exporting spans (%s) failed: %s; the count is reported at exit", self.label, why)

    def begin_shutdown(self, budget_s: float) -> None:
        self._deadline = time.monotonic() + budget_s

    @property
    def dropped(self) -> int:
        """Spans that never reached the exporter: the queue was full, or they were still queued at exit."""
        return max(self.handed - self.exported - self.failed, 0)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _CountingBatchProcessor(BatchSpanProcessor):
    def __init__(self, exporter: CountingSpanExporter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._counting = exporter

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._counting.handed += 1
        super().on_end(span)


class JsonLinesFile:
    """One file shared by the span and metric exporters: whole lines, written under a lock, mode 0600."""

    def __init__(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TelemetrySetupError(f"cannot open the telemetry file {path}: {exc.strerror}") from exc
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write_lines(self, lines: list[str]) -> bool:
        with self._lock:
            if self._file.closed:
                return False
            try:
                self._file.write("".join(line + "\n" for line in lines))
                self._file.flush()
            except OSError:
                return False
        return True

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _JsonLinesSpanExporter(SpanExporter):
    def __init__(self, file: JsonLinesFile) -> None:
        self._file = file

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._file.write_lines([span.to_json(indent=None) for span in spans])
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


class _JsonLinesMetricExporter(MetricExporter):
    def __init__(self, file: JsonLinesFile) -> None:
        super().__init__()
        self._file = file

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        ok = self._file.write_lines([metrics_data.to_json(indent=None)])
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _otlp_module(settings: ExportSettings, signal: Literal["traces", "metrics"]) -> Any:
    if settings.protocol == "grpc":
        name = _GRPC_TRACES if signal == "traces" else _GRPC_METRICS
        if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
            raise TelemetrySetupError(
                "telemetry protocol grpc needs the opentelemetry-exporter-otlp-proto-grpc package: "
                "install it, or use protocol: http"
            )
        return importlib.import_module(name)
    return importlib.import_module(_HTTP_TRACES if signal == "traces" else _HTTP_METRICS)


def _otlp_endpoint(settings: ExportSettings, signal: Literal["traces", "metrics"]) -> str | None:
    if settings.endpoint is None:
        return None  # the exporter reads OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT itself
    if settings.protocol == "grpc":
        return settings.endpoint
    base = settings.endpoint.rstrip("/")
    suffix = f"/v1/{signal}"
    return base if base.endswith(suffix) else base + suffix


def _span_exporter(settings: ExportSettings, file: JsonLinesFile | None) -> SpanExporter:
    if settings.traces == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout carries MCP messages only
    if settings.traces == "jsonl":
        assert file is not None
        return _JsonLinesSpanExporter(file)
    module = _otlp_module(settings, "traces")
    exporter: SpanExporter = module.OTLPSpanExporter(
        endpoint=_otlp_endpoint(settings, "traces"), timeout=settings.export_timeout_s
    )
    return exporter


def _metric_exporter(settings: ExportSettings, file: JsonLinesFile | None) -> MetricExporter:
    if settings.metrics == "console":
        return ConsoleMetricExporter(out=sys.stderr)
    if settings.metrics == "jsonl":
        assert file is not None
        return _JsonLinesMetricExporter(file)
    module = _otlp_module(settings, "metrics")
    exporter: MetricExporter = module.OTLPMetricExporter(
        endpoint=_otlp_endpoint(settings, "metrics"), timeout=settings.export_timeout_s
    )
    return exporter


# -- the whole ------------------------------------------------------------------------------------------


@dataclass
class Observability:
    """What `run` hands the proxy (`observer`, `audit`), and how to take it down (`shutdown`)."""

    observer: Observer | None = None
    audit: AuditLog | None = None
    recorder: Recorder | None = None
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    span_exporter: CountingSpanExporter | None = None
    _files: list[JsonLinesFile] = field(default_factory=list)

    def shutdown(self, budget_s: float = SHUTDOWN_BUDGET_S) -> None:
        """End open sessions, close the audit log, flush what can be flushed within `budget_s`, report losses."""
        if self.recorder is not None:
            self.recorder.shutdown()
        if self.audit is not None:
            try:
                self.audit.close()
            except AuditWriteError as exc:
                logger.error("audit log: %s", exc)
        if self.span_exporter is not None:
            self.span_exporter.begin_shutdown(budget_s)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=budget_s * 1000)
        for file in self._files:
            file.close()
        self._report()

    def _report(self) -> None:
        exporter = self.span_exporter
        if exporter is None or not (exporter.failed or exporter.dropped):
            return
        logger.warning(
            "telemetry: %d of %d spans were not exported (%d failed to export%s, %d dropped before export)",
            exporter.failed + exporter.dropped,
            exporter.handed,
            exporter.failed,
            f": {exporter.last_error}" if exporter.last_error else "",
            exporter.dropped,
        )


def start_observability(
    telemetry: Telemetry,
    audit: Audit | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    upstream_transports: Mapping[str, str] | None = None,
    export_timeout_s: float | None = None,
) -> Observability:
    """Open the audit log and build the providers that `telemetry:` and OTEL_* ask for.

    The observer is None when nothing is exported and nothing audited: the proxy then records nothing
    and pays nothing. Raises `AuditWriteError` if the audit log cannot be opened (unless
    `on_failure: allow`) and `TelemetrySetupError` for a configuration that cannot work.
    """
    settings = export_settings(telemetry, os.environ if environ is None else environ)
    if export_timeout_s is not None:
        settings = dataclasses.replace(settings, export_timeout_s=export_timeout_s)
    result = Observability(audit=_open_audit(audit))
    file = JsonLinesFile(settings.path) if "jsonl" in (settings.traces, settings.metrics) and settings.path else None
    if file is not None:
        result._files.append(file)
    resource = _resource(settings)
    if settings.traces != "none":
        exporter = CountingSpanExporter(_span_exporter(settings, file), settings.traces)
        result.span_exporter = exporter
        result.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        result.tracer_provider.add_span_processor(
            _CountingBatchProcessor(exporter, schedule_delay_millis=settings.schedule_delay_ms)
        )
    if settings.metrics != "none":
        readers: list[MetricReader] = [PeriodicExportingMetricReader(_metric_exporter(settings, file))]
        result.meter_provider = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)
    if result.tracer_provider is None and result.meter_provider is None and result.audit is None:
        return result
    result.recorder = Recorder(
        tracer=result.tracer_provider.get_tracer(TRACER_NAME, __version__) if result.tracer_provider else None,
        meter=result.meter_provider.get_meter(TRACER_NAME, __version__) if result.meter_provider else None,
        audit=result.audit,
        audit_on_failure=audit.on_failure if audit is not None else "deny",
        record_arguments=telemetry.record_arguments,
        redact_keys=telemetry.redact_keys,
        upstream_transports=upstream_transports,
    )
    result.observer = result.recorder
    _quiet_sdk_loggers()
    return result


def _open_audit(audit: Audit | None) -> AuditLog | None:
    if audit is None:
        return None
    try:
        return AuditLog.open(audit.path, fsync=audit.fsync, max_bytes=audit.max_bytes)
    except AuditWriteError as exc:
        if audit.on_failure != "allow":
            raise
        logger.error("audit log: %s; serving without an audit log (audit.on_failure: allow)", exc)
        return None


def _resource(settings: ExportSettings) -> Resource:
    """service.name from the settings; OTEL_RESOURCE_ATTRIBUTES adds the rest (e.g. openinference.project.name)."""
    return Resource.create({SERVICE_NAME: settings.service_name, SERVICE_VERSION: __version__})


def _quiet_sdk_loggers() -> None:
    """The exporters log every failed batch; `CountingSpanExporter` reports once, and the total at exit."""
    if not logging.getLogger("mcp_firewall").isEnabledFor(logging.DEBUG):
        logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
        logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
