"""What the firewall does with each request an agent makes: handshake, lists, calls, subscriptions."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from mcp_firewall.errors import UpstreamError
from mcp_firewall.policy.decision import Decision
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.session_core import (
    HANDSHAKE_VERSIONS,
    LIST_FLAGS,
    MODERN_VERSION,
    REFUSED,
    SERVER_INFO,
    SUBSCRIPTION_ID_KEY,
    SessionCore,
)
from mcp_firewall.proxy.upstream import deadline_after

__all__ = ["RequestHandlers"]

logger = logging.getLogger("mcp_firewall.proxy.session")

DENIAL_META_KEY = "mcp_firewall/denial"


class RequestHandlers(SessionCore):
    """One method per MCP request an agent may make (the table is in session.py)."""

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

    async def _ping(self, request_id: Any, params: dict[str, Any]) -> None:
        await self._write(jsonrpc.response(request_id, self._complete({})))

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
        if context is REFUSED:
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
        if context is REFUSED:
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
        honored: dict[str, Any] = {flag: True for _, flag, _ in LIST_FLAGS if wanted.get(flag) is True}
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
