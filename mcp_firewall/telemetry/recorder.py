"""The `Recorder`: the proxy's `Observer` that turns each request into spans, metrics and audit records.

Per agent request, with a tracer: a SERVER span named `{mcp.method.name} {target}` (semantic
conventions for MCP), parented on the agent's `params._meta.traceparent` when there is one and on the
session's span otherwise; and for a request forwarded upstream, a CLIENT span under it whose context
is injected into the forwarded `params._meta`. With a meter: the conventions' operation-duration
histograms and a counter of decisions. With an audit log: a decision record written before
`begin` returns (its hash goes on the span) and an outcome record once a forwarded request ends.

Only the OpenTelemetry API is used here: with no tracer and no meter nothing is created, and a
request that is neither traced nor audited costs one comparison.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from mcp_firewall.audit import AuditLog
from mcp_firewall.config.model import DEFAULT_REDACT_KEYS
from mcp_firewall.errors import AuditWriteError
from mcp_firewall.policy.decision import Decision
from mcp_firewall.proxy.observe import RequestInfo
from mcp_firewall.telemetry import attributes as a
from mcp_firewall.telemetry._instruments import Instruments
from mcp_firewall.telemetry._spans import (
    MetaGetter,
    add_target,
    error_description,
    finish,
    trace_id_of,
    upstream_name,
)
from mcp_firewall.telemetry.redact import Redactor

__all__ = ["Recorder"]

logger = logging.getLogger(__name__)

_TARGET_KEY: Final = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "uri"}
_NAME_ATTRIBUTE: Final = {"tools/call": a.GEN_AI_TOOL_NAME, "prompts/get": a.GEN_AI_PROMPT_NAME}
_HIDDEN_CODE: Final = {"tools/call": "-32602", "prompts/get": "-32602", "resources/read": "-32002"}
_TRANSPORT_OF_KIND: Final = {"stdio": "pipe", "http": "tcp", "sse": "tcp"}
_PROPAGATION_KEYS: Final = ("traceparent", "tracestate", "baggage")
_MAX_OPEN_SESSIONS: Final = 4096


_GETTER: Final = MetaGetter()


@dataclass(eq=False, slots=True)
class _Session:
    span: Span
    context: Context
    started: float
    transport: str
    protocol_version: str = ""


@dataclass(eq=False, slots=True)
class _Call:
    """What the recorder keeps about one request between `begin` and `end` (the session's opaque context)."""

    info: RequestInfo
    decision: Decision | None
    started: float
    span: Span | None = None
    client: Span | None = None
    forwarded_at: float | None = None
    trace_id: str | None = None
    reason: str | None = None  # the decision's reason, with secrets cut out
    metric_attributes: dict[str, str] | None = None
    ended: bool = False


_current: ContextVar[_Call | None] = ContextVar("mcp_firewall_current_call", default=None)


class Recorder:
    """Implements `mcp_firewall.proxy.observe.Observer`: spans, metrics and the audit log.

    Every dependency is optional and injected: `tracer` (spans), `meter` (metrics), `audit` (the
    log). `record_arguments` puts redacted argument values on spans and in decision records.
    """

    def __init__(
        self,
        *,
        tracer: Tracer | None = None,
        meter: Meter | None = None,
        audit: AuditLog | None = None,
        audit_on_failure: Literal["deny", "allow"] = "deny",
        record_arguments: bool = False,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        upstream_transports: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._tracer = tracer
        self._audit = audit
        self._audit_fails_open = audit_on_failure == "allow"
        self._record_arguments = record_arguments
        self._redactor = Redactor(redact_keys)
        self._upstream_transports = {
            name: _TRANSPORT_OF_KIND.get(kind, kind) for name, kind in (upstream_transports or {}).items()
        }
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._idle = tracer is None and meter is None
        self._instruments = Instruments(meter) if meter is not None else None

    # -- Observer ------------------------------------------------------------------------------

    def begin(self, info: RequestInfo, decision: Decision | None) -> _Call | None:
        if self._idle and (decision is None or self._audit is None):
            return None
        call = _Call(info, decision, self._clock())
        if decision is not None and decision.outcome != "allow" and decision.reason:
            call.reason = self._redactor.reason(decision.reason, info.arguments)
        if self._tracer is not None:
            call.span = self._start_server_span(self._tracer, call)
            call.trace_id = format(call.span.get_span_context().trace_id, "032x")
            if decision is None:
                _current.set(call)  # requests forwarded without a decision find their span here
        else:
            call.trace_id = trace_id_of(info.meta)
        if decision is not None and self._audit is not None:
            self._record_decision(self._audit, call, decision)  # raises (after ending the span) to refuse
        if self._instruments is not None:
            call.metric_attributes = self._instruments.attributes_of(info)
            if decision is not None:
                self._instruments.count_decision(call.metric_attributes, info, decision)
        return call

    def forwarding(self, context: Any, meta: dict[str, Any]) -> None:
        call = context if isinstance(context, _Call) else _current.get()
        if call is None or call.ended:
            return
        if context is call:
            call.forwarded_at = self._clock()
        if call.span is None or self._tracer is None:
            return
        if context is not call:  # forwarded without its own context: the SERVER span is the parent upstream
            propagate.inject(meta, context=trace_api.set_span_in_context(call.span))
            return
        call.client = self._start_client_span(self._tracer, call)
        propagate.inject(meta, context=trace_api.set_span_in_context(call.client))

    def end(self, context: Any, *, error_type: str | None = None, is_error: bool = False) -> None:
        if not isinstance(context, _Call) or context.ended:
            return
        call = context
        call.ended = True
        if _current.get() is call:
            _current.set(None)
        now = self._clock()
        error = error_type or ("tool_error" if is_error else None)
        if call.client is not None:
            finish(call.client, error, error_description(error))
        if call.span is not None:
            self._finish_server_span(call, call.span, error)
        if self._instruments is not None and call.metric_attributes is not None:
            client_s = now - call.forwarded_at if call.forwarded_at is not None else None
            self._instruments.record(call.metric_attributes, call.info.upstream, now - call.started, client_s, error)
        if self._audit is not None and call.decision is not None and call.forwarded_at is not None:
            self._record_outcome(self._audit, call, now, error)

    def quarantined(self, upstream: str, tool: str, diff: str) -> None:
        """A tool is hidden because its definition differs from tools.lock: an audit record and a span event."""
        if self._audit is not None:
            try:
                self._audit.record_decision(
                    agent=None,
                    decision="hidden",
                    method="tools/list",
                    upstream=upstream,
                    tool=tool,
                    reason="quarantined: its definition differs from tools.lock, or the lock does not know it",
                    diff=diff,
                )
            except AuditWriteError as exc:
                logger.error("audit log: the quarantine of %s/%s could not be recorded: %s", upstream, tool, exc)
        if self._tracer is None:
            return
        sessions = list(self._sessions.values())
        parent = sessions[-1].context if len(sessions) == 1 else Context()
        attributes = {a.UPSTREAM: upstream, a.GEN_AI_TOOL_NAME: tool, a.OPENINFERENCE_SPAN_KIND: a.SPAN_KIND_CHAIN}
        span = self._tracer.start_span(f"quarantine {tool}", context=parent, attributes=attributes)
        span.add_event(a.QUARANTINED_EVENT, {a.UPSTREAM: upstream, a.GEN_AI_TOOL_NAME: tool, "diff": diff})
        span.end()

    # -- sessions ------------------------------------------------------------------------------

    def close_session(self, session_id: str) -> None:
        """End a session's span and record its duration (the stdio transport calls this at exit)."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        if session.protocol_version:
            session.span.set_attribute(a.MCP_PROTOCOL_VERSION, session.protocol_version)
        session.span.end()
        if self._instruments is not None:
            attributes = {a.NETWORK_TRANSPORT: session.transport}
            if session.protocol_version:
                attributes[a.MCP_PROTOCOL_VERSION] = session.protocol_version
            self._instruments.session_duration.record(max(self._clock() - session.started, 0.0), attributes)

    async def run(self) -> None:
        """Hand queued measurements to the metrics SDK every 100 ms, between requests."""
        if self._instruments is None:
            return
        while True:
            await anyio.sleep(0.1)
            self._instruments.flush()

    def shutdown(self) -> None:
        """End every open session's span and hand over queued measurements. Call before the providers shut down."""
        for session_id in list(self._sessions):
            self.close_session(session_id)
        if self._instruments is not None:
            self._instruments.flush()

    # -- spans ---------------------------------------------------------------------------------

    def _session(self, tracer: Tracer, info: RequestInfo) -> _Session:
        session = self._sessions.get(info.session_id)
        if session is None:
            attributes = {
                a.MCP_SESSION_ID: info.session_id,
                a.OPENINFERENCE_SESSION_ID: info.session_id,
                a.AGENT: info.agent,
                a.NETWORK_TRANSPORT: info.transport,
                a.OPENINFERENCE_SPAN_KIND: a.SPAN_KIND_AGENT,
            }
            span = tracer.start_span(f"session {info.agent}", context=Context(), attributes=attributes)
            session = _Session(span, trace_api.set_span_in_context(span, Context()), self._clock(), info.transport)
            if len(self._sessions) >= _MAX_OPEN_SESSIONS:  # transports that never say a session ended
                self.close_session(next(iter(self._sessions)))
            self._sessions[info.session_id] = session
        if info.protocol_version:
            session.protocol_version = info.protocol_version
        return session

    def _start_server_span(self, tracer: Tracer, call: _Call) -> Span:
        info = call.info
        session = self._session(tracer, info)
        meta = info.meta
        parent = session.context
        links: list[Link] = []
        if meta and any(key in meta for key in _PROPAGATION_KEYS):
            remote = propagate.extract(meta, context=Context(), getter=_GETTER)
            if trace_api.get_current_span(remote).get_span_context().is_valid:
                parent = remote
                links.append(Link(session.span.get_span_context()))
        name = f"{info.method} {info.target}" if info.method in _NAME_ATTRIBUTE and info.target else info.method
        attributes = self._server_attributes(call)
        return tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes, links=links)

    def _server_attributes(self, call: _Call) -> dict[str, Any]:
        info, decision = call.info, call.decision
        attributes: dict[str, Any] = {
            a.MCP_METHOD_NAME: info.method,
            a.MCP_SESSION_ID: info.session_id,
            a.OPENINFERENCE_SESSION_ID: info.session_id,
            a.NETWORK_TRANSPORT: info.transport,
            a.AGENT: info.agent,
            a.OPENINFERENCE_SPAN_KIND: a.SPAN_KIND_TOOL if info.method == "tools/call" else a.SPAN_KIND_CHAIN,
        }
        if info.protocol_version:
            attributes[a.MCP_PROTOCOL_VERSION] = info.protocol_version
        if info.request_id is not None:
            attributes[a.JSONRPC_REQUEST_ID] = str(info.request_id)
        add_target(attributes, info.method, info.target)
        if info.upstream is not None:
            attributes[a.UPSTREAM] = info.upstream
        if decision is not None:
            attributes.update(_decision_attributes(decision, call.reason))
            if self._record_arguments and info.arguments is not None:
                redacted = self._redactor.arguments(info.arguments)
                attributes[a.ARGUMENTS] = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
        return attributes

    def _start_client_span(self, tracer: Tracer, call: _Call) -> Span:
        info = call.info
        assert call.span is not None
        target = upstream_name(info.target, info.upstream) if info.method in _NAME_ATTRIBUTE else None
        attributes: dict[str, Any] = {
            a.MCP_METHOD_NAME: info.method,
            a.OPENINFERENCE_SPAN_KIND: a.SPAN_KIND_TOOL if info.method == "tools/call" else a.SPAN_KIND_CHAIN,
        }
        add_target(attributes, info.method, target if target is not None else info.target)
        if info.upstream is not None:
            attributes[a.UPSTREAM] = info.upstream
            if (transport := self._upstream_transports.get(info.upstream)) is not None:
                attributes[a.NETWORK_TRANSPORT] = transport
        name = f"{info.method} {target}" if target else info.method
        context = trace_api.set_span_in_context(call.span, Context())
        return tracer.start_span(name, context=context, kind=SpanKind.CLIENT, attributes=attributes)

    def _finish_server_span(self, call: _Call, span: Span, error: str | None) -> None:
        decision = call.decision
        if decision is not None and decision.outcome in ("deny", "hidden"):
            if error is not None:
                span.set_attribute(a.ERROR_TYPE, error)
            if decision.outcome == "hidden" or call.info.method != "tools/call":
                span.set_attribute(a.RPC_RESPONSE_STATUS_CODE, _HIDDEN_CODE.get(call.info.method, "-32602"))
            span.set_status(Status(StatusCode.ERROR, call.reason or decision.outcome))
            span.end()
            return
        finish(span, error, error_description(error))

    # -- audit ---------------------------------------------------------------------------------

    def _record_decision(self, audit: AuditLog, call: _Call, decision: Decision) -> None:
        info = call.info
        fields: dict[str, Any] = {_TARGET_KEY.get(info.method, "tool"): info.target}
        if self._record_arguments and info.arguments is not None:
            fields["args"] = self._redactor.arguments(info.arguments)
        try:
            record_hash = audit.record_decision(
                agent=info.agent,
                session=info.session_id,
                method=info.method,
                upstream=info.upstream,
                decision=decision.outcome,
                reason=call.reason,
                scope=decision.scope if decision.forwarded else None,
                trace_id=call.trace_id,
                **fields,
            )
        except AuditWriteError as exc:
            if not self._audit_fails_open:
                self._refuse(call)
                raise
            logger.error("audit log: %s; the request goes ahead unaudited (audit.on_failure: allow)", exc)
            if call.span is not None:
                call.span.add_event("mcp_firewall.audit_failed")
            return
        if call.span is not None:
            call.span.set_attribute(a.AUDIT_HASH, record_hash)

    def _refuse(self, call: _Call) -> None:
        """The decision could not be recorded: the session refuses the request and will not call `end`."""
        call.ended = True
        if call.span is not None:
            call.span.set_attribute(a.ERROR_TYPE, "audit_write_error")
            call.span.set_status(Status(StatusCode.ERROR, "the audit log cannot be written; request refused"))
            call.span.end()

    def _record_outcome(self, audit: AuditLog, call: _Call, now: float, error: str | None) -> None:
        info = call.info
        try:
            audit.record_outcome(
                agent=info.agent,
                session=info.session_id,
                method=info.method,
                upstream=info.upstream,
                status="error" if error is not None else "ok",
                duration_ms=round(max(now - (call.forwarded_at or now), 0.0) * 1000, 3),
                trace_id=call.trace_id,
                **{_TARGET_KEY.get(info.method, "tool"): info.target},
            )
        except AuditWriteError as exc:  # the answer is already on its way: nothing left to refuse
            logger.error("audit log: the outcome of a %s could not be recorded: %s", info.method, exc)


def _decision_attributes(decision: Decision, reason: str | None) -> dict[str, str]:
    facts = ((a.RULE, decision.rule), (a.ARGUMENT, decision.argument), (a.CONSTRAINT, decision.constraint))
    attributes: dict[str, str] = {key: value for key, value in facts if value is not None}
    attributes[a.DECISION] = decision.outcome
    if reason is not None:
        attributes[a.REASON] = reason
    if decision.scope is not None and decision.forwarded:
        attributes[a.SCOPE] = decision.scope
    return attributes
