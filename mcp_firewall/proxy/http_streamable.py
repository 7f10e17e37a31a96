"""Streamable HTTP at `/mcp`, both protocol eras.

Handshake era (2025-11-25 and older; no `MCP-Protocol-Version` header or one of those versions): one
stateful session per `initialize`, named by `Mcp-Session-Id` and owned by the agent that opened it (its
id presented with another agent's credential answers 404, as an unknown id does). The HTTP side is the
SDK's `StreamableHTTPServerTransport`: POST streams, the standalone GET stream, DELETE, idle expiry,
resumable streams (a per-session event store, priming events with `retry:`, `Last-Event-ID`), and SSE
keep-alive comments every 15 s. It is bridged to an `AgentSession`: inbound messages are the strictly
parsed bodies (never the SDK's lenient re-parse), outbound ones carry `related_request_id` so that
progress, log messages and upstream requests during a call travel on that call's POST stream.

2026-07-28 (`MCP-Protocol-Version: 2026-07-28`): no session id; every POST is one self-contained
request. Each agent has one `AgentSession` for its 2026-07-28 requests (and its own upstream
connections), started on first use and closed after the idle timeout. Request ids are rewritten to
ids unique within that session and restored on the way out, so concurrent clients of one agent can
never answer or cancel each other's requests. A request is answered as JSON when its result comes
first, or as an SSE stream (with keep-alive comments) when notifications come first or it runs long;
closing the stream cancels the request.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
    StreamId,
    check_accept_headers,
)
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.http import PARSED_MESSAGE, SessionHost, _headers, _json_error
from mcp_firewall.proxy.identity import Credential

__all__ = ["StreamableTransport", "sdk_messages", "sdk_sink"]

logger = logging.getLogger(__name__)

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
_SSE_PING_SECONDS = 15.0
_EXCHANGE_BUFFER = 64


# ---------------------------------------------------------------------------------------------- SDK bridge


async def sdk_messages(read: Any) -> AsyncIterator[jsonrpc.Message]:
    """The agent's messages from an SDK transport's read stream: the strictly parsed bodies."""
    while True:
        try:
            item = await read.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return  # the session was terminated (DELETE, idle) or the client went away
        if isinstance(item, Exception):
            logger.debug("transport error: %s", item)
            continue
        request = getattr(item.metadata, "request_context", None)
        parsed = getattr(request, "scope", {}).get(PARSED_MESSAGE)
        if isinstance(parsed, dict):
            yield parsed
        else:  # not expected: every POST is parsed by the gate
            yield item.message.model_dump(by_alias=True, exclude_unset=True, mode="json")


def sdk_sink(write: Any) -> Any:
    """A session sink writing to an SDK transport's write stream, with the related request id."""

    async def sink(message: jsonrpc.Message, related: Any) -> None:
        try:
            parsed: JSONRPCMessage = jsonrpc_message_adapter.validate_python(message)
        except ValidationError:
            logger.warning("dropped an outbound message that is not valid JSON-RPC (method %r)", message.get("method"))
            if "method" in message or message.get("id") is None:
                return
            error = jsonrpc.error_response(message["id"], jsonrpc.INTERNAL_ERROR, "upstream sent an invalid answer")
            parsed = jsonrpc_message_adapter.validate_python(error)
        metadata = ServerMessageMetadata(related_request_id=related) if related is not None else None
        try:
            await write.send(SessionMessage(parsed, metadata=metadata))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("session closed; dropped an outbound message")

    return sink


class _SessionEvents(EventStore):
    """One session's recent outbound events, for `Last-Event-ID` resumption (bounded per session)."""

    def __init__(self, max_events: int) -> None:
        self._events: deque[tuple[int, StreamId, JSONRPCMessage | None]] = deque(maxlen=max_events)
        self._next = 0
        self._prefix = secrets.token_hex(4)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._next += 1
        self._events.append((self._next, stream_id, message))
        return f"{self._prefix}-{self._next}"

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        prefix, _, number = last_event_id.partition("-")
        if prefix != self._prefix or not number.isdigit():
            return None
        after = int(number)
        stream = next((s for n, s, _ in self._events if n == after), None)
        if stream is None:
            return None
        for n, s, message in list(self._events):
            if n > after and s == stream and message is not None:
                await send_callback(EventMessage(message, f"{self._prefix}-{n}"))
        return stream


# ---------------------------------------------------------------------------------------------- the route


class StreamableTransport:
    """`/mcp`: routes each request to its era's handler."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.legacy = _LegacySessions(host)
        self.modern = _ModernHubs(host)

    async def handle(self, scope: Scope, receive: Receive, send: Send, credential: Credential) -> None:
        version = _headers(scope).get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self.modern.handle(scope, receive, send, credential)
        else:
            await self.legacy.handle(scope, receive, send, credential)


class _LegacySessions:
    """Handshake-era sessions: the SDK's per-session transport, bridged to an `AgentSession`."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self._sessions: dict[str, tuple[StreamableHTTPServerTransport, str]] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, credential: Credential) -> None:
        session_id = _headers(scope).get(MCP_SESSION_ID_HEADER)
        if session_id is not None:
            entry = self._sessions.get(session_id)
            if entry is None or entry[1] != credential.agent:
                if entry is not None:
                    logger.warning("agent %r presented a session id of another agent; refused", credential.agent)
                await _json_error(send, 404, None, jsonrpc.INVALID_REQUEST, "Session not found")
                return
            transport = entry[0]
            await transport.handle_request(scope, receive, send)
            if transport.is_terminated:
                await self._discard(session_id, transport)
            return
        if len(self._sessions) >= self.host.options.max_sessions:
            await _json_error(send, 503, None, jsonrpc.INTERNAL_ERROR, "Too many open sessions")
            return
        options = self.host.options
        transport = StreamableHTTPServerTransport(
            mcp_session_id=secrets.token_urlsafe(24),
            event_store=_SessionEvents(options.events_per_stream),
            retry_interval=options.retry_interval_ms,
            idle_timeout=options.session_idle_timeout_s,
        )
        new_id = transport.mcp_session_id
        assert new_id is not None
        self._sessions[new_id] = (transport, credential.agent)
        status: int | None = None
        try:
            await self.host.task_group.start(self._run, transport, credential.agent)

            async def watch(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await transport.handle_request(scope, receive, watch)
        finally:
            if status is None or status >= 400:  # nothing was established: forget it again
                await self._discard(new_id, transport)

    async def _run(
        self,
        transport: StreamableHTTPServerTransport,
        agent: str,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        session_id = transport.mcp_session_id
        assert session_id is not None
        try:
            async with transport.connect() as (read, write):
                task_status.started()
                idle = transport.idle_scope or anyio.CancelScope()
                with idle:
                    await self.host.serve_session(agent, session_id, sdk_messages(read), sdk_sink(write))
                if idle.cancelled_caught:
                    logger.info("session %s of agent %r idle; closed", session_id[:8], agent)
        finally:
            await self._discard(session_id, transport)

    async def _discard(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self._sessions.pop(session_id, None)
        if not transport.is_terminated:
            with anyio.CancelScope(shield=True):
                await transport.terminate()


# ---------------------------------------------------------------------------------------------- 2026-07-28


class _Exchange:
    """One 2026-07-28 HTTP request waiting on its agent session."""

    def __init__(self, original_id: Any) -> None:
        self.original_id = original_id
        self.send, self.receive = anyio.create_memory_object_stream[jsonrpc.Message](_EXCHANGE_BUFFER)
        self.answered = False


class _Hub:
    """An agent's session for 2026-07-28 requests: one `AgentSession`, ids rewritten per request."""

    def __init__(self, host: SessionHost, agent: str) -> None:
        self.host = host
        self.agent = agent
        self.session_id = secrets.token_hex(16)
        self.inbound: MemoryObjectSendStream[jsonrpc.Message]
        self._inbound_out: MemoryObjectReceiveStream[jsonrpc.Message]
        self.inbound, self._inbound_out = anyio.create_memory_object_stream[jsonrpc.Message](0)
        self.exchanges: dict[str, _Exchange] = {}
        self._next = 0
        self.closing = False
        self._idle_since = anyio.current_time()
        self._became_idle = anyio.Event()

    def open(self, original_id: Any) -> tuple[str, _Exchange]:
        self._next += 1
        internal = f"{self.session_id[:8]}-{self._next}"
        exchange = _Exchange(original_id)
        self.exchanges[internal] = exchange
        if self._became_idle.is_set():
            self._became_idle = anyio.Event()
        return internal, exchange

    def close(self, internal: str) -> None:
        exchange = self.exchanges.pop(internal, None)
        if exchange is not None:
            exchange.send.close()
            exchange.receive.close()
        if not self.exchanges:
            self._idle_since = anyio.current_time()
            self._became_idle.set()

    async def sink(self, message: jsonrpc.Message, related: Any) -> None:
        if "method" not in message:
            target = message.get("id")
        elif related is not None:
            target = related
        else:
            logger.debug("2026-07-28 has no stream for %s outside a request; dropped", message.get("method"))
            return
        exchange = self.exchanges.get(target) if isinstance(target, str) else None
        if exchange is None or not isinstance(target, str):
            return
        try:
            await exchange.send.send(_restore(message, target, exchange.original_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def run(self, hubs: dict[str, _Hub]) -> None:
        """Serve until idle for the session idle timeout (or cancelled); then leave `hubs`."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._expire, hubs, tg.cancel_scope)
                await self.host.serve_session(self.agent, self.session_id, self._inbound_out, self.sink)
        finally:
            self.closing = True
            if hubs.get(self.agent) is self:
                del hubs[self.agent]
            for exchange in self.exchanges.values():
                exchange.send.close()

    async def _expire(self, hubs: dict[str, _Hub], scope: anyio.CancelScope) -> None:
        timeout = self.host.options.session_idle_timeout_s
        while True:
            if self.exchanges:
                await self._became_idle.wait()
                continue
            await anyio.sleep_until(self._idle_since + timeout)
            if not self.exchanges and anyio.current_time() >= self._idle_since + timeout:
                self.closing = True  # decided with no await since the check: no request can slip in
                if hubs.get(self.agent) is self:
                    del hubs[self.agent]
                self.inbound.close()
                logger.info("2026-07-28 session of agent %r idle; closed", self.agent)
                return


def _restore(message: jsonrpc.Message, internal: str, original: Any) -> jsonrpc.Message:
    """The message as the agent's client must see it: its own request id, also as a subscription id."""
    if "method" not in message:
        return {**message, "id": original}
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and meta.get(SUBSCRIPTION_ID_KEY) == internal:
        assert isinstance(params, dict)
        return {**message, "params": {**params, "_meta": {**meta, SUBSCRIPTION_ID_KEY: original}}}
    return message


class _ModernHubs:
    """2026-07-28 requests: validate the HTTP envelope, then hand each request to its agent's hub."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.hubs: dict[str, _Hub] = {}

    def _hub(self, agent: str) -> _Hub:
        hub = self.hubs.get(agent)
        if hub is None or hub.closing:
            hub = self.hubs[agent] = _Hub(self.host, agent)
            self.host.task_group.start_soon(hub.run, self.hubs)
        return hub

    async def handle(self, scope: Scope, receive: Receive, send: Send, credential: Credential) -> None:
        headers = _headers(scope)
        if scope["method"] != "POST":
            await _empty(send, 405, [(b"allow", b"POST")])
            return
        from starlette.requests import Request

        has_json, has_sse = check_accept_headers(Request(scope))
        if not has_json and not has_sse:
            await _empty(send, 406)
            return
        message: jsonrpc.Message = scope[PARSED_MESSAGE]
        if "id" not in message:
            await _empty(send, 202)  # the 2026-07-28 wire defines no client notifications: accepted, dropped
            return
        if "method" not in message:
            await _reply(send, jsonrpc.error_response(message["id"], jsonrpc.INVALID_REQUEST, "Expected a request"))
            return
        rejection = _envelope_rejection(scope, message, headers)
        if rejection is not None:
            await _reply(send, jsonrpc.error_response(message["id"], rejection.code, rejection.message, rejection.data))
            return
        if message["method"] == "subscriptions/listen" and not has_sse:
            await _empty(send, 406)
            return
        hub = self._hub(credential.agent)
        internal, exchange = hub.open(message["id"])
        try:
            await hub.inbound.send({**message, "id": internal})
            await _respond(exchange, receive, send, stream=has_sse, listen=message["method"] == "subscriptions/listen")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            await _json_error(send, 503, message["id"], jsonrpc.INTERNAL_ERROR, "the agent's session is closing")
        finally:
            answered = exchange.answered
            hub.close(internal)
            if not answered and not hub.closing:  # the client went away: cancel what it asked for
                cancel = jsonrpc.notification("notifications/cancelled", {"requestId": internal, "reason": "closed"})
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await hub.inbound.send(cancel)


def _envelope_rejection(
    scope: Scope, message: jsonrpc.Message, headers: dict[str, str]
) -> InboundLadderRejection | None:
    raw = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers", ())]
    duplicated = find_duplicated_routing_header(raw)
    if duplicated is not None:
        from mcp_types import HEADER_MISMATCH

        return InboundLadderRejection(code=HEADER_MISMATCH, message=f"{duplicated} header appears more than once")
    verdict = classify_inbound_request(message, headers=headers)
    return verdict if isinstance(verdict, InboundLadderRejection) else None


async def _respond(exchange: _Exchange, receive: Receive, send: Send, *, stream: bool, listen: bool) -> None:
    """JSON when the answer comes first; otherwise an SSE stream with keep-alive comments."""
    first: jsonrpc.Message | None = None
    if not listen or not stream:
        with anyio.move_on_after(_SSE_PING_SECONDS if stream else float("inf")):
            first = await exchange.receive.receive()
            while not stream and "method" in first:  # JSON only: notifications have nowhere to go
                first = await exchange.receive.receive()
        if first is not None and "method" not in first:
            exchange.answered = True
            await _reply(send, first)
            return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache, no-transform"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
        message = first
        while True:
            if message is not None:
                await send({"type": "http.response.body", "body": _event(message), "more_body": True})
                if "method" not in message:
                    exchange.answered = True
                    break
            message = None
            with anyio.move_on_after(_SSE_PING_SECONDS):
                try:
                    message = await exchange.receive.receive()
                except anyio.EndOfStream:  # the agent's session closed under this request
                    break
            if message is None:
                await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
        tg.cancel_scope.cancel()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _event(message: jsonrpc.Message) -> bytes:
    return b"event: message\r\ndata: " + jsonrpc.dump(message).rstrip(b"\n") + b"\r\n\r\n"


async def _reply(send: Send, message: jsonrpc.Message) -> None:
    error = message.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = ERROR_CODE_HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200
    body = jsonrpc.dump(message).rstrip(b"\n")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _empty(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0"), *(headers or [])]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})
