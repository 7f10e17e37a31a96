"""One agent's connection to the firewall: both protocol eras, every request checked, answers relayed.

Messages are plain dicts parsed once (`jsonrpc.load_untrusted`); a call's path is parse → decide →
re-serialise the checked value → write upstream, and the answer is relayed with only its id changed.
Nothing here decides policy: every question goes to the agent's view (`policy.view.AgentView`).

Eras. A connection becomes handshake-era (`initialize`) or 2026-07-28 (a request carrying the
`io.modelcontextprotocol/*` envelope, usually `server/discover`) by its first request. Upstreams
always speak the handshake era, so for a 2026-07-28 agent the session translates:
- results gain `resultType` (and list results `ttlMs: 0`, `cacheScope: "private"`: a filtered list
  is the agent's own);
- a request an upstream makes of the client while a call is in flight (sampling, elicitation, roots)
  is returned to the agent as an `InputRequiredResult`; the upstream call stays parked until the
  agent retries with `inputResponses` and the `requestState` it was given;
- list changes reach the agent on its `subscriptions/listen` stream.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from mcp_firewall.proxy.upstream import Forwarded, Upstream, deadline_after

if TYPE_CHECKING:
    from mcp_firewall.lockfile import Pins, ToolChange

__all__ = ["AgentSession"]

logger = logging.getLogger(__name__)

MODERN_VERSION = "2026-07-28"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
ENVELOPE = "io.modelcontextprotocol/"
PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = {"name": "mcp-firewall", "version": __version__}
DENIAL_META_KEY = "mcp_firewall/denial"
INTERACTIVE = frozenset({"tools/call", "prompts/get", "resources/read"})
_LIST_FLAGS = (
    ("tools", "toolsListChanged", "notifications/tools/list_changed"),
    ("prompts", "promptsListChanged", "notifications/prompts/list_changed"),
    ("resources", "resourcesListChanged", "notifications/resources/list_changed"),
)

Writer = Callable[[bytes], Awaitable[None]]
# Transports that route messages per request (Streamable HTTP) take each outbound message as a dict with
# the id of the agent's request it belongs to (None: connection-scoped), instead of bytes.
MessageSink = Callable[[jsonrpc.Message, Any], Awaitable[None]]
Handler = Callable[["AgentSession", Any, dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class _Parked:
    """A 2026-07-28 agent's call whose upstream is waiting on the agent's client."""

    token: str
    carrier: Forwarded
    method: str
    params: dict[str, Any]
    requests: dict[str, tuple[Upstream, Any, dict[str, Any]]] = field(default_factory=dict)
    early: jsonrpc.Message | None = None


class AgentSession:
    """Serves one agent connection over any transport that carries whole JSON-RPC messages."""

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
        self._parked: dict[str, _Parked] = {}
        self._listens: dict[Any, dict[str, Any]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        for up in upstreams:
            up.listeners.append(self)

    # -- the connection ------------------------------------------------------------------------

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
            if self in up.listeners:
                up.listeners.remove(self)
        self._observer.close_session(self.session_id)

    # -- requests from the agent -----------------------------------------------------------------

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
        if method not in _DECIDED:
            handler = _observed(handler)
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

    async def _initialize(self, request_id: Any, params: dict[str, Any]) -> None:
        requested = params.get("protocolVersion")
        self.protocol_version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
        self._introduce(params.get("capabilities"), params.get("clientInfo"))
        await self._wait_settled()
        result: dict[str, Any] = {
            "protocolVersion": self.protocol_version,
            "capabilities": self._capabilities(),
            "serverInfo": SERVER_INFO,
        }
        if instructions := self._instructions():
            result["instructions"] = instructions
        self._ready = True
        await self._write(jsonrpc.response(request_id, result))

    async def _discover(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._wait_settled()
        result: dict[str, Any] = {
            "supportedVersions": [MODERN_VERSION],
            "capabilities": self._capabilities(),
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO},
        }
        if instructions := self._instructions():
            result["instructions"] = instructions
        self._ready = True
        await self._write(jsonrpc.response(request_id, result))

    def _capabilities(self) -> dict[str, Any]:
        offered = [up.capabilities for up in self._upstreams.values()]
        capabilities: dict[str, Any] = {"tools": {"listChanged": True}}
        if any("prompts" in c for c in offered):
            capabilities["prompts"] = {"listChanged": True}
        if any("resources" in c for c in offered):
            resources: dict[str, Any] = {"listChanged": True}
            if self.era == "legacy":
                resources["subscribe"] = any((c.get("resources") or {}).get("subscribe") for c in offered)
            capabilities["resources"] = resources
        if any("completions" in c for c in offered):
            capabilities["completions"] = {}
        if any("logging" in c for c in offered):
            capabilities["logging"] = {}
        return capabilities

    def _instructions(self) -> str:
        parts = [f"{up.name}: {up.instructions}" for up in self._upstreams.values() if up.instructions]
        return "\n\n".join(parts)

    def _settled(self) -> bool:
        return all(up.settled.is_set() for up in self._upstreams.values())

    async def _wait_settled(self) -> None:
        for up in self._upstreams.values():
            with anyio.move_on_after(up.spec.timeout_s):
                await up.settled.wait()

    async def _ping(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._write(jsonrpc.response(request_id, self._complete({})))

    # -- lists ---------------------------------------------------------------------------------

    async def _list(self, request_id: Any, key: str, items: list[dict[str, Any]]) -> None:
        result: dict[str, Any] = {key: items}
        if self.era == "modern":
            result.update(resultType="complete", ttlMs=0, cacheScope="private")
        await self._write(jsonrpc.response(request_id, result))

    async def _list_tools(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._list(request_id, "tools", self._view.tools())

    async def _list_prompts(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._list(request_id, "prompts", self._view.prompts())

    async def _list_resources(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._list(request_id, "resources", self._view.resources())

    async def _list_templates(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._list(request_id, "resourceTemplates", self._view.templates())

    # -- calls ---------------------------------------------------------------------------------

    async def _call_tool(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._use_named(request_id, params, "tools/call")

    async def _get_prompt(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._use_named(request_id, params, "prompts/get")

    async def _use_named(self, request_id: Any, params: dict[str, Any], method: str) -> None:
        """tools/call and prompts/get: decide, then answer (hidden, denied) or forward what was checked."""
        name = params.get("name")
        arguments = params.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, dict | None):
            message = f"Invalid params: {method} takes a name and an object of arguments"
            await self._error(request_id, jsonrpc.INVALID_PARAMS, message)
            return
        is_tool = method == "tools/call"
        check = self._view.check_tool if is_tool else self._view.check_prompt
        decision, route = check(name, arguments or {})
        if (state := params.get("requestState")) is not None:  # a 2026-07-28 retry: decided again, like any call
            if route is not None and decision.forwarded:
                await self._resume(request_id, method, params, state)
                return
            await self._abandon(state)
        context = await self._begin(request_id, method, name, route.upstream if route else None, params, decision)
        if context is _REFUSED:
            return
        if route is None or decision.outcome == "hidden":
            unknown = f"Unknown {'tool' if is_tool else 'prompt'}: {name}"
            await self._error(request_id, jsonrpc.INVALID_PARAMS, unknown)
            self._observer.end(context, error_type="hidden")
            return
        if not decision.forwarded:
            if is_tool:  # a tool result, so that the model can correct itself
                await self._write(jsonrpc.response(request_id, self._complete(_denial_result(decision))))
            else:
                await self._error(request_id, jsonrpc.INVALID_PARAMS, _denial_text(decision))
            self._observer.end(context, error_type="denied", is_error=True)
            return
        forward: dict[str, Any] = {"name": route.name}
        if arguments is not None:
            forward["arguments"] = arguments
        await self._forward(request_id, route.upstream, method, forward, params, context)

    async def _read_resource(self, request_id: Any, params: dict[str, Any]) -> None:
        uri = params.get("uri")
        if not isinstance(uri, str):
            await self._error(request_id, jsonrpc.INVALID_PARAMS, "Invalid params: resources/read takes a uri")
            return
        decision, upstream = self._view.check_resource(uri)
        if (state := params.get("requestState")) is not None:
            if upstream is not None and decision.forwarded:
                await self._resume(request_id, "resources/read", params, state)
                return
            await self._abandon(state)
        context = await self._begin(request_id, "resources/read", uri, upstream, params, decision)
        if context is _REFUSED:
            return
        if upstream is None or not decision.forwarded:
            await self._error(request_id, jsonrpc.RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})
            self._observer.end(context, error_type="hidden")
            return
        await self._forward(request_id, upstream, "resources/read", {"uri": uri}, params, context)

    async def _subscribe(self, request_id: Any, params: dict[str, Any], method: str) -> None:
        uri = params.get("uri")
        if not isinstance(uri, str):
            await self._error(request_id, jsonrpc.INVALID_PARAMS, f"Invalid params: {method} takes a uri")
            return
        upstream = await self._resource_upstream(request_id, uri)
        if upstream is not None:
            await self._forward(request_id, upstream, method, {"uri": uri}, params)

    async def _resource_subscribe(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._subscribe(request_id, params, "resources/subscribe")

    async def _resource_unsubscribe(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._subscribe(request_id, params, "resources/unsubscribe")

    async def _resource_upstream(self, request_id: Any, uri: str) -> str | None:
        decision, upstream = self._view.check_resource(uri)
        if upstream is None or decision.outcome == "hidden":
            await self._error(request_id, jsonrpc.RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})
            return None
        if not decision.forwarded:
            await self._error(request_id, jsonrpc.RESOURCE_NOT_FOUND, _denial_text(decision), {"uri": uri})
            return None
        return upstream

    async def _complete_argument(self, request_id: Any, params: dict[str, Any]) -> None:
        ref = params.get("ref")
        upstream, forwarded_ref = self._completion_target(ref)
        if upstream is None:
            await self._error(request_id, jsonrpc.INVALID_PARAMS, "Invalid params: unknown completion reference")
            return
        forward = {key: value for key, value in params.items() if key != "_meta"}
        forward["ref"] = forwarded_ref
        await self._forward(request_id, upstream, "completion/complete", forward, params)

    def _completion_target(self, ref: Any) -> tuple[str | None, Any]:
        if not isinstance(ref, dict):
            return None, ref
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            _, route = self._view.check_prompt(ref["name"], {})
            return (route.upstream, {**ref, "name": route.name}) if route is not None else (None, ref)
        if ref.get("type") == "ref/resource" and isinstance(uri := ref.get("uri"), str):
            if any(template.get("uriTemplate") == uri for template in self._view.templates()):
                return self._catalog.upstream_of_template(uri), ref
            decision, upstream = self._view.check_resource(uri)
            return (upstream if decision.forwarded else None), ref
        return None, ref

    async def _set_level(self, request_id: Any, params: dict[str, Any]) -> None:
        level = {"level": params.get("level")}
        for up in self._upstreams.values():
            if up.state == "ready" and "logging" in up.capabilities:
                try:
                    await up.call("logging/setLevel", level)
                except UpstreamError as exc:
                    logger.warning("%s", exc)
        await self._write(jsonrpc.response(request_id, self._complete({})))

    async def _listen(self, request_id: Any, params: dict[str, Any]) -> None:
        wanted = params.get("notifications") if isinstance(params.get("notifications"), dict) else {}
        assert isinstance(wanted, dict)
        honored: dict[str, Any] = {flag: True for _, flag, _ in _LIST_FLAGS if wanted.get(flag) is True}
        uris = [u for u in wanted.get("resourceSubscriptions") or () if isinstance(u, str)]
        if uris:
            honored["resourceSubscriptions"] = uris
        self._listens[request_id] = honored
        meta = {SUBSCRIPTION_ID_KEY: request_id}
        ack = {"notifications": honored, "_meta": meta}
        await self._write(jsonrpc.notification("notifications/subscriptions/acknowledged", ack), request_id)
        for uri in uris:
            upstream = self._view.check_resource(uri)[1]
            if upstream is not None and upstream in self._upstreams:
                try:
                    await self._upstreams[upstream].call("resources/subscribe", {"uri": uri})
                except UpstreamError as exc:
                    logger.warning("%s", exc)

    # -- forwarding ----------------------------------------------------------------------------

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
            return _REFUSED

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
        pending = Forwarded(self, request_id, method, token, deadline_after(upstream.spec.timeout_s))
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

    async def deliver(self, pending: Forwarded, message: jsonrpc.Message) -> None:
        parked = self._parked_for(pending)
        if parked is not None:
            parked.early = message
            return
        self._inflight.pop(pending.down_id, None)
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

    # -- notifications and responses from the agent ---------------------------------------------

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

    # -- what upstreams ask of the agent's client -------------------------------------------------

    async def upstream_request(self, upstream: Upstream, message: jsonrpc.Message) -> None:
        method = message["method"]
        request_id = message["id"]
        gate = self._gate()
        if method == "roots/list" and (roots := gate.fixed_roots(upstream.name)) is not None:
            await upstream.respond(request_id, {"result": {"roots": roots}})
            return
        decision = gate.check_upstream_request(self.agent, upstream.name, method)
        if not decision.forwarded:
            error = {
                "code": jsonrpc.INVALID_REQUEST,
                "message": f"mcp-firewall: {method} is not allowed for this upstream",
            }
            await upstream.respond(request_id, {"error": error})
            return
        if self.era == "modern":
            await self._park(upstream, message)
            return
        self._next_out += 1
        self._outgoing[self._next_out] = (upstream, request_id)
        await self._write(jsonrpc.request(self._next_out, method, message.get("params")), self._related(upstream))

    async def upstream_cancelled(self, upstream: Upstream, request_id: Any) -> None:
        for down_id, (up, up_id) in list(self._outgoing.items()):
            if up is upstream and up_id == request_id:
                del self._outgoing[down_id]
                await self._write(jsonrpc.notification("notifications/cancelled", {"requestId": down_id}))
        for parked in self._parked.values():
            for key, (up, up_id, _) in list(parked.requests.items()):
                if up is upstream and up_id == request_id:
                    del parked.requests[key]

    async def upstream_notification(self, upstream: Upstream, message: jsonrpc.Message) -> None:
        method = message["method"]
        params = message.get("params") or {}
        if method == "notifications/message":
            await self._write(message, self._related(upstream))
        elif method == "notifications/resources/updated":
            uri = params.get("uri")
            if not isinstance(uri, str) or self._view.check_resource(uri)[1] is None:
                return
            if self.era == "modern":
                for listen_id, honored in list(self._listens.items()):
                    if uri in honored.get("resourceSubscriptions", ()):
                        meta = {SUBSCRIPTION_ID_KEY: listen_id}
                        await self._write(jsonrpc.notification(method, {**params, "_meta": meta}), listen_id)
            else:
                await self._write(message)

    def upstream_changed(self, upstream: Upstream) -> None:
        """Rebuild what this agent sees; tell the agent about lists whose contents changed."""
        self.refresh_view()

    def refresh_view(self) -> None:
        lists = [up.lists for up in self._upstreams.values()]
        if self._pins is not None:  # tools whose definitions differ from tools.lock are quarantined
            lists = [self._pins.screen(upstream_lists, self._quarantined) for upstream_lists in lists]
        self._catalog = Catalog.build(lists)
        self._view = self._gate().view(self.agent, self._catalog)
        visible = self._visible_names()
        changed = [kind for kind in visible if visible[kind] != self._visible.get(kind)]
        self._visible = visible
        if changed and self._ready and self._tg is not None:
            self._tg.start_soon(self._announce, changed)

    def _quarantined(self, change: ToolChange) -> None:
        report = change.describe()
        logger.warning("quarantined until `mcp-firewall lock` records it again: %s", report)
        self._observer.quarantined(change.upstream, change.tool, report)

    def _visible_names(self) -> dict[str, object]:
        return {
            "tools": [(t.get("name"), t.get("description"), t.get("inputSchema")) for t in self._view.tools()],
            "prompts": [p.get("name") for p in self._view.prompts()],
            "resources": [r.get("uri") for r in self._view.resources()]
            + [t.get("uriTemplate") for t in self._view.templates()],
        }

    async def _announce(self, kinds: list[str]) -> None:
        for kind, flag, method in _LIST_FLAGS:
            if kind not in kinds:
                continue
            if self.era == "legacy":
                await self._write(jsonrpc.notification(method))
                continue
            for listen_id, honored in list(self._listens.items()):
                if honored.get(flag):
                    meta = {SUBSCRIPTION_ID_KEY: listen_id}
                    await self._write(jsonrpc.notification(method, {"_meta": meta}), listen_id)

    # -- 2026-07-28: requests of the client become InputRequiredResult -----------------------------

    def _parked_for(self, pending: Forwarded) -> _Parked | None:
        return pending.park if isinstance(pending.park, _Parked) else None

    async def _park(self, upstream: Upstream, message: jsonrpc.Message) -> None:
        carrier = next(
            (p for p in self._inflight.values() if p.upstream is upstream and p.method in INTERACTIVE),
            None,
        ) or next((p.carrier for p in self._parked.values() if p.carrier.upstream is upstream), None)
        if carrier is None:
            error = {
                "code": jsonrpc.INVALID_REQUEST,
                "message": "the agent's client speaks 2026-07-28 and can only be asked during one of its requests",
            }
            await upstream.respond(message["id"], {"error": error})
            return
        parked = self._parked_for(carrier)
        if parked is None:
            method, forward = carrier.request
            parked = _Parked(secrets.token_urlsafe(18), carrier, method, forward)
            carrier.park = parked
            self._parked[parked.token] = parked
        key = f"{upstream.name}-{message['id']}"
        parked.requests[key] = (
            upstream,
            message["id"],
            {"method": message["method"], "params": message.get("params") or {}},
        )
        if carrier.down_id is not None:
            down_id, carrier.down_id = carrier.down_id, None
            self._inflight.pop(down_id, None)
            await self._write(jsonrpc.response(down_id, self._input_required(parked)))

    def _input_required(self, parked: _Parked) -> dict[str, Any]:
        requests = {key: request for key, (_, _, request) in parked.requests.items()}
        return {"resultType": "input_required", "inputRequests": requests, "requestState": parked.token}

    async def _resume(self, request_id: Any, method: str, params: dict[str, Any], state: Any) -> None:
        parked = self._parked.get(state) if isinstance(state, str) else None
        if parked is None or parked.method != method or not _same_request(parked.params, params, method):
            await self._error(request_id, jsonrpc.INVALID_PARAMS, "Invalid params: unknown or mismatched requestState")
            return
        del self._parked[parked.token]
        responses = params.get("inputResponses") if isinstance(params.get("inputResponses"), dict) else {}
        assert isinstance(responses, dict)
        for key in [k for k in parked.requests if k in responses]:
            upstream, upstream_request_id, _ = parked.requests.pop(key)
            await upstream.respond(upstream_request_id, {"result": responses[key]})
        carrier = parked.carrier
        carrier.down_id = request_id
        meta = params.get("_meta")
        carrier.progress_token = meta.get("progressToken") if isinstance(meta, dict) else None
        if parked.requests:  # still waiting on the client: ask again, under a fresh token
            parked.token = secrets.token_urlsafe(18)
            self._parked[parked.token] = parked
            carrier.down_id = None
            await self._write(jsonrpc.response(request_id, self._input_required(parked)))
            return
        carrier.park = None
        carrier.deadline = deadline_after(carrier.upstream.spec.timeout_s if carrier.upstream else 60.0)
        self._inflight[request_id] = carrier
        if parked.early is not None:
            await self.deliver(carrier, parked.early)

    async def _abandon(self, state: Any) -> None:
        """A retry the policy no longer allows: the parked upstream call and its questions are cancelled."""
        parked = self._parked.pop(state, None) if isinstance(state, str) else None
        if parked is None:
            return
        refusal = {"error": {"code": jsonrpc.INVALID_REQUEST, "message": "mcp-firewall: the agent's call was refused"}}
        for upstream, upstream_request_id, _ in parked.requests.values():
            await upstream.respond(upstream_request_id, refusal)
        carrier = parked.carrier
        if carrier.upstream is not None:
            await carrier.upstream.cancel(carrier, "refused by mcp-firewall on retry")
        self._observer.end(carrier.context, error_type="denied")

    _HANDLERS: Mapping[str, Handler] = {}


_REFUSED = object()
_DECIDED = frozenset({"tools/call", "prompts/get", "resources/read"})


def _observed(handler: Handler) -> Handler:
    """Wrap a handler so that the request gets a span of its own (lists, ping, initialize, …)."""

    async def observed(session: AgentSession, request_id: Any, params: dict[str, Any]) -> None:
        meta = params.get("_meta")
        info = RequestInfo(
            session.agent,
            session.session_id,
            session.protocol_version,
            _METHOD_OF[handler],
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


def _same_request(original: dict[str, Any], retry: dict[str, Any], method: str) -> bool:
    if method == "resources/read":
        return original.get("uri") == retry.get("uri")
    return original.get("arguments") == retry.get("arguments")


def _denial_text(decision: Decision) -> str:
    if decision.argument is not None and decision.constraint is not None:
        where = f"argument '{decision.argument}' fails '{decision.constraint}'"
        return f"Denied by mcp-firewall: {where}: {decision.reason}"
    return f"Denied by mcp-firewall: {decision.reason}"


def _denial_result(decision: Decision) -> dict[str, Any]:
    denial: dict[str, Any] = {"reason": decision.reason}
    for key in ("argument", "constraint", "rule", "scope"):
        if (value := getattr(decision, key)) is not None:
            denial[key] = value
    return {
        "content": [{"type": "text", "text": _denial_text(decision)}],
        "isError": True,
        "_meta": {DENIAL_META_KEY: denial},
    }


_HANDLER_TABLE: dict[str, Handler] = {
    "initialize": AgentSession._initialize,
    "server/discover": AgentSession._discover,
    "ping": AgentSession._ping,
    "tools/list": AgentSession._list_tools,
    "tools/call": AgentSession._call_tool,
    "prompts/list": AgentSession._list_prompts,
    "prompts/get": AgentSession._get_prompt,
    "resources/list": AgentSession._list_resources,
    "resources/templates/list": AgentSession._list_templates,
    "resources/read": AgentSession._read_resource,
    "resources/subscribe": AgentSession._resource_subscribe,
    "resources/unsubscribe": AgentSession._resource_unsubscribe,
    "completion/complete": AgentSession._complete_argument,
    "logging/setLevel": AgentSession._set_level,
    "subscriptions/listen": AgentSession._listen,
}
AgentSession._HANDLERS = _HANDLER_TABLE
_METHOD_OF = {handler: method for method, handler in _HANDLER_TABLE.items()}
