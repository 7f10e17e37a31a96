"""The state and plumbing of one agent's session: the connection, the era, forwarding, answers.

`AgentSession` (session.py) is this core plus the handlers of agents' requests (session_requests.py) and
of what upstreams send (session_upstream.py). See session.py for how the eras are served.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import anyio
import anyio.abc

from mcp_firewall import __version__
from mcp_firewall.catalog import Catalog
from mcp_firewall.errors import AuditWriteError, UpstreamError, UpstreamTimeout
from mcp_firewall.policy.decision import Decision
from mcp_firewall.policy.view import AgentView, Gate
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.framing import Oversized
from mcp_firewall.proxy.observe import NullObserver, Observer, RequestInfo
from mcp_firewall.proxy.upstream import Forwarded, Upstream, UpstreamListener, deadline_after

if TYPE_CHECKING:
    from mcp_firewall.lockfile import Pins

__all__ = ["SessionCore"]

logger = logging.getLogger("mcp_firewall.proxy.session")

MODERN_VERSION = "2026-07-28"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ENVELOPE = "io.modelcontextprotocol/"
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = {"name": "mcp-firewall", "version": __version__}
INTERACTIVE = frozenset({"tools/call", "prompts/get", "resources/read"})
DECIDED = INTERACTIVE  # requests whose decision the session records itself; the rest get `_observed`
REFUSED = object()  # `_begin` could not record the decision: the request was refused (fail closed)
LIST_FLAGS = (
    ("tools", "toolsListChanged", "notifications/tools/list_changed"),
    ("prompts", "promptsListChanged", "notifications/prompts/list_changed"),
    ("resources", "resourcesListChanged", "notifications/resources/list_changed"),
)

Writer = Callable[[bytes], Awaitable[None]]
# Transports that route messages per request (Streamable HTTP) take each outbound message as a dict with
# the id of the agent's request it belongs to (None: connection-scoped), instead of bytes.
MessageSink = Callable[[jsonrpc.Message, Any], Awaitable[None]]
Handler = Callable[[Any, Any, dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class Parked:
    """A 2026-07-28 agent's call whose upstream is waiting on the agent's client."""

    token: str
    carrier: Forwarded
    method: str
    params: dict[str, Any]
    requests: dict[str, tuple[Upstream, Any, dict[str, Any]]] = field(default_factory=dict)
    early: jsonrpc.Message | None = None


class SessionCore:
    """What the request handlers and the upstream events of one agent's session share: its state, the
    connection, the era, forwarding and relaying answers."""

    _HANDLERS: ClassVar[Mapping[str, Handler]] = {}

    def __init__(
        self,
        *,
        agent: str,
        gate: Callable[[], Gate],
        upstreams: Sequence[Upstream],
        write: Writer,
        session_id: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        observer: Observer | None = None,
        transport: str = "pipe",
        sink: MessageSink | None = None,
        pins: Pins | None = None,
    ) -> None:
        self.agent = agent
        self.session_id = session_id or secrets.token_hex(16)
        self.era: str | None = None
        self.protocol_version = ""
        self.client_capabilities: dict[str, Any] = {}
        self.client_info: dict[str, Any] = {}
        self._gate = gate
        self._observer: Observer = observer or NullObserver()
        self._transport = transport
        self._upstreams = {up.name: up for up in upstreams}
        self._write_bytes = write
        self._sink = sink
        self._pins = pins
        self._max_bytes = max_message_bytes
        self._catalog = Catalog()
        self._view: AgentView = gate().view(agent, self._catalog)
        self._visible = self._visible_names()
        self._ready = False  # answered the agent's initialize/discover; list changes are now reported
        self._inflight: dict[Any, Forwarded] = {}
        self._outgoing: dict[int, tuple[Upstream, Any]] = {}
        self._next_out = 0
        self._parked: dict[str, Parked] = {}
        self._listens: dict[Any, dict[str, Any]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        for up in upstreams:
            up.listeners.append(self._listener)

    @property
    def _listener(self) -> UpstreamListener:
        """This session as upstreams see it (`UpstreamEvents` completes the protocol in `AgentSession`)."""
        return cast("UpstreamListener", self)

    async def serve(self, lines: Any) -> None:
        """Handle every message from `lines` (an async iterator of bytes or `Oversized`) until it ends."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                async for line in lines:
                    if isinstance(line, dict):  # already parsed strictly by the transport
                        await self.handle_message(line)
                    else:
                        await self.handle_line(line)
                tg.cancel_scope.cancel()
        finally:
            self.close()

    async def handle_line(self, line: bytes | Oversized) -> None:
        if isinstance(line, Oversized):
            text = f"Parse error: message of {line.size} bytes exceeds the limit of {self._max_bytes}"
            await self._write(jsonrpc.error_response(None, jsonrpc.PARSE_ERROR, text))
            return
        try:
            message = jsonrpc.load_untrusted(line, self._max_bytes)
        except jsonrpc.MessageError as exc:
            await self._write(jsonrpc.error_response(exc.request_id, exc.code, exc.message))
            return
        await self.handle_message(message)

    async def handle_message(self, message: jsonrpc.Message) -> None:
        """Handle one message that `jsonrpc.load_untrusted` (or an equally strict parser) accepted."""
        method = message.get("method")
        if method is None:
            await self._on_response(message)
        elif "id" in message:
            await self._on_request(message)
        else:
            await self._on_notification(method, message.get("params") or {})

    async def _write(self, message: jsonrpc.Message, related: Any = None) -> None:
        if self._sink is not None:
            await self._sink(message, related)
        else:
            await self._write_bytes(jsonrpc.dump(message))

    def _related(self, upstream: Upstream) -> Any:
        """The agent request that a message from `upstream` most likely belongs to: its latest in-flight one."""
        for pending in reversed(self._inflight.values()):
            if pending.upstream is upstream:
                return pending.down_id
        return None

    def close(self) -> None:
        for up in self._upstreams.values():
            if self._listener in up.listeners:
                up.listeners.remove(self._listener)
        self._observer.close_session(self.session_id)

    async def _on_request(self, message: jsonrpc.Message) -> None:
        request_id = message["id"]
        method = message["method"]
        params = message.get("params") or {}
        if not self._accept_era(method, params):
            await self._write(self._era_error(request_id, method, params))
            return
        if self.era == "modern" and (rejection := self._modern_envelope(params)) is not None:
            await self._error(request_id, rejection.code, rejection.message, rejection.data)
            return
        handler = self._HANDLERS.get(method)
        if handler is None:
            await self._error(request_id, jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")
            return
        if method not in DECIDED:
            handler = _observed(handler, method)
        if self._settled() or method == "ping":
            await handler(self, request_id, params)
            return
        assert self._tg is not None
        if method == "initialize":  # it introduces the client, which upstreams wait for: never queue it
            self._tg.start_soon(handler, self, request_id, params)
        else:
            self._tg.start_soon(self._after_startup, handler, request_id, params)

    async def _after_startup(self, handler: Handler, request_id: Any, params: dict[str, Any]) -> None:
        await self._wait_settled()
        await handler(self, request_id, params)

    def _accept_era(self, method: str, params: dict[str, Any]) -> bool:
        enveloped = isinstance(meta := params.get("_meta"), dict) and PROTOCOL_VERSION_KEY in meta
        if self.era is None:
            if method == "initialize" and not enveloped:
                self.era = "legacy"
                return True
            if not enveloped:
                return method == "ping"
            self.era = "modern"
            return True
        if self.era == "modern":
            return enveloped and method != "initialize"
        return not enveloped and method != "initialize"

    def _era_error(self, request_id: Any, method: str, params: dict[str, Any]) -> jsonrpc.Message:
        if self.era is None:
            return jsonrpc.error_response(request_id, jsonrpc.INVALID_REQUEST, "Received request before initialization")
        if self.era == "modern":
            if method == "initialize":
                message = "connection is serving the 2026-07-28 protocol; the initialize handshake is not accepted"
                # `supported` lets a client whose discover probe timed out re-probe instead of failing.
                requested = params.get("protocolVersion")
                data = {"supported": [MODERN_VERSION], "requested": requested if isinstance(requested, str) else ""}
                return jsonrpc.error_response(request_id, jsonrpc.UNSUPPORTED_PROTOCOL_VERSION, message, data)
            return jsonrpc.error_response(
                request_id, jsonrpc.INVALID_PARAMS, "params._meta must carry the 2026-07-28 envelope"
            )
        message = (
            "this connection serves the handshake protocol era; requests carrying the 2026-07-28 envelope "
            "or a second initialize are not accepted on it"
        )
        return jsonrpc.error_response(request_id, jsonrpc.INVALID_REQUEST, message)

    def _modern_envelope(self, params: dict[str, Any]) -> Any:
        """None when the 2026-07-28 envelope is valid (the SDK's own ladder decides), else its rejection."""
        from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request

        route = classify_inbound_request({"params": params})
        if isinstance(route, InboundLadderRejection):
            return route
        if not self.client_capabilities and not self.client_info:
            self.protocol_version = route.protocol_version
            self._introduce(route.client_capabilities or {}, route.client_info or {})
        return None

    def _introduce(self, capabilities: Any, client_info: Any) -> None:
        self.client_capabilities = capabilities if isinstance(capabilities, dict) else {}
        self.client_info = client_info if isinstance(client_info, dict) else {}
        gate = self._gate()
        for up in self._upstreams.values():
            up.introduce_client(gate.capabilities_for(up.name, self.client_capabilities), self.client_info)

    def _settled(self) -> bool:
        return all(up.settled.is_set() for up in self._upstreams.values())

    async def _wait_settled(self) -> None:
        for up in self._upstreams.values():
            with anyio.move_on_after(up.spec.timeout_s):
                await up.settled.wait()

    async def _begin(
        self,
        request_id: Any,
        method: str,
        target: str,
        upstream: str | None,
        params: dict[str, Any],
        decision: Decision,
    ) -> Any:
        """Record the decision (audit first, fail closed); `_REFUSED` when it could not be recorded."""
        meta = params.get("_meta")
        info = RequestInfo(
            self.agent,
            self.session_id,
            self.protocol_version,
            method,
            request_id,
            target,
            upstream,
            params.get("arguments"),
            meta if isinstance(meta, dict) else None,
            self._transport,
        )
        try:
            return self._observer.begin(info, decision)
        except AuditWriteError as exc:
            logger.error("%s", exc)
            message = "mcp-firewall: the audit log cannot be written, so the request is refused"
            await self._error(request_id, jsonrpc.INTERNAL_ERROR, message)
            return REFUSED

    async def _forward(
        self,
        request_id: Any,
        upstream_name: str,
        method: str,
        forward: dict[str, Any],
        params: dict[str, Any],
        context: Any = None,
    ) -> None:
        upstream = self._upstreams.get(upstream_name)
        meta = params.get("_meta")
        token = None
        if isinstance(meta, dict):
            token = meta.get("progressToken")
            kept = {k: v for k, v in meta.items() if not k.startswith(ENVELOPE) and k != "progressToken"}
            if kept:
                forward["_meta"] = kept
        if upstream is None:
            await self._error(request_id, jsonrpc.INTERNAL_ERROR, f"upstream {upstream_name!r} is not configured")
            return
        pending = Forwarded(self._listener, request_id, method, token, deadline_after(upstream.spec.timeout_s))
        pending.request = (method, forward)
        pending.context = context
        outgoing_meta: dict[str, Any] = dict(forward.get("_meta") or {})
        self._observer.forwarding(context, outgoing_meta)
        if outgoing_meta:
            forward["_meta"] = outgoing_meta
        self._inflight[request_id] = pending
        try:
            await upstream.forward(pending, method, forward)
        except UpstreamError as exc:
            self._inflight.pop(request_id, None)
            await self._error(request_id, jsonrpc.INTERNAL_ERROR, str(exc))
            self._observer.end(context, error_type="upstream_unavailable")

    async def deliver(self, pending: Forwarded, message: jsonrpc.Message, raw: bytes | None = None) -> None:
        parked = self._parked_for(pending)
        if parked is not None:
            parked.early = message
            return
        self._inflight.pop(pending.down_id, None)
        if raw is not None and self._sink is None and self.era == "legacy":
            relayed = jsonrpc.with_id(raw, message, pending.up_id, pending.down_id)
            if relayed is not None:  # the upstream's own bytes, only the id changed: no second serialisation
                await self._write_bytes(relayed)
                result = message.get("result")
                self._observer.end(pending.context, is_error=isinstance(result, dict) and result.get("isError") is True)
                return
        if "error" in message:
            await self._write({"jsonrpc": "2.0", "id": pending.down_id, "error": message["error"]})
            self._observer.end(pending.context, error_type=str(message["error"].get("code", "error")))
            return
        result = message.get("result")
        result = result if isinstance(result, dict) else {}
        await self._write(jsonrpc.response(pending.down_id, self._complete(result)))
        self._observer.end(pending.context, is_error=result.get("isError") is True)

    async def deliver_progress(self, pending: Forwarded, params: dict[str, Any]) -> None:
        await self._write(
            jsonrpc.notification("notifications/progress", {**params, "progressToken": pending.progress_token}),
            pending.down_id,
        )

    async def fail(self, pending: Forwarded, error: UpstreamError) -> None:
        parked = self._parked_for(pending)
        if parked is not None:
            self._parked.pop(parked.token, None)
            return
        if self._inflight.pop(pending.down_id, None) is None:
            return
        timeout = isinstance(error, UpstreamTimeout)
        await self._error(pending.down_id, jsonrpc.REQUEST_TIMEOUT if timeout else jsonrpc.INTERNAL_ERROR, str(error))
        self._observer.end(pending.context, error_type="timeout" if timeout else "upstream_unavailable")

    def _complete(self, result: dict[str, Any]) -> dict[str, Any]:
        if self.era == "modern" and "resultType" not in result:
            result["resultType"] = "complete"
        return result

    async def _error(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        await self._write(jsonrpc.error_response(request_id, code, message, data))

    async def _on_notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "notifications/cancelled":
            await self._cancelled(params.get("requestId"), params.get("reason"))
        elif method == "notifications/roots/list_changed":
            gate = self._gate()
            for up in self._upstreams.values():
                if up.state == "ready" and gate.fixed_roots(up.name) is None:
                    await up.notify(method, None)

    async def _cancelled(self, request_id: Any, reason: Any) -> None:
        if self._listens.pop(request_id, None) is not None:
            return
        pending = self._inflight.pop(request_id, None)
        if pending is not None and pending.upstream is not None:
            await pending.upstream.cancel(pending, reason if isinstance(reason, str) else "cancelled by the client")
            self._observer.end(pending.context, error_type="cancelled")

    async def _on_response(self, message: jsonrpc.Message) -> None:
        response_id = message.get("id")
        target = self._outgoing.pop(response_id, None) if isinstance(response_id, int) else None
        if target is not None:
            upstream, upstream_request_id = target
            try:
                await upstream.respond(upstream_request_id, message)
            except UpstreamError as exc:
                logger.warning("%s", exc)

    def _visible_names(self) -> dict[str, object]:
        return {
            "tools": [(t.get("name"), t.get("description"), t.get("inputSchema")) for t in self._view.tools()],
            "prompts": [p.get("name") for p in self._view.prompts()],
            "resources": [r.get("uri") for r in self._view.resources()]
            + [t.get("uriTemplate") for t in self._view.templates()],
        }

    def _parked_for(self, pending: Forwarded) -> Parked | None:
        return pending.park if isinstance(pending.park, Parked) else None

    def _input_required(self, parked: Parked) -> dict[str, Any]:
        requests = {key: request for key, (_, _, request) in parked.requests.items()}
        return {"resultType": "input_required", "inputRequests": requests, "requestState": parked.token}


def _observed(handler: Handler, method: str) -> Handler:
    """Wrap a handler so that the request gets a span of its own (lists, ping, initialize, …)."""

    async def observed(session: SessionCore, request_id: Any, params: dict[str, Any]) -> None:
        meta = params.get("_meta")
        info = RequestInfo(
            session.agent,
            session.session_id,
            session.protocol_version,
            method,
            request_id,
            meta=meta if isinstance(meta, dict) else None,
            transport=session._transport,
        )
        context = session._observer.begin(info, None)
        try:
            await handler(session, request_id, params)
        finally:
            session._observer.end(context)

    return observed
