"""What the firewall does with what upstreams send an agent: requests of its client, notifications, list changes."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from mcp_firewall.catalog import Catalog
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.session_core import INTERACTIVE, LIST_FLAGS, SUBSCRIPTION_ID_KEY, Parked, SessionCore
from mcp_firewall.proxy.upstream import Upstream

if TYPE_CHECKING:
    from mcp_firewall.lockfile import ToolChange

__all__ = ["UpstreamEvents"]

logger = logging.getLogger("mcp_firewall.proxy.session")


class UpstreamEvents(SessionCore):
    """The `UpstreamListener` side of a session."""

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

    async def _announce(self, kinds: list[str]) -> None:
        for kind, flag, method in LIST_FLAGS:
            if kind not in kinds:
                continue
            if self.era == "legacy":
                await self._write(jsonrpc.notification(method))
                continue
            for listen_id, honored in list(self._listens.items()):
                if honored.get(flag):
                    meta = {SUBSCRIPTION_ID_KEY: listen_id}
                    await self._write(jsonrpc.notification(method, {"_meta": meta}), listen_id)

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
            parked = Parked(secrets.token_urlsafe(18), carrier, method, forward)
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
