"""One upstream MCP server: connect, initialise, keep its lists, correlate requests, restart on failure.

The firewall always speaks the handshake era (2025-11-25 `initialize`) to upstreams: every server in
the ecosystem speaks it, and it is the era in which an upstream can ask the agent's client for
sampling, elicitation and roots while a call is in flight. Agents of either era are translated to it
by the session (see `session.py`).

An upstream is initialised only once the agent's client has introduced itself, so that the
capabilities it is offered are the agent's (narrowed by policy); the process itself is started at
once, so that its start-up overlaps the agent's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc

from mcp_firewall import __version__
from mcp_firewall.catalog import UpstreamLists
from mcp_firewall.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.transports import UpstreamSpec, UpstreamTransport, open_transport

__all__ = ["Forwarded", "Upstream", "UpstreamListener"]

logger = logging.getLogger(__name__)

HANDSHAKE_VERSION = "2025-11-25"
_LISTS = (
    ("tools", "tools/list", "tools"),
    ("prompts", "prompts/list", "prompts"),
    ("resources", "resources/list", "resources"),
    ("templates", "resources/templates/list", "resourceTemplates"),
)
_CAPABILITY_OF_LIST = {"tools": "tools", "prompts": "prompts", "resources": "resources", "templates": "resources"}
_LIST_CHANGED = {
    "notifications/tools/list_changed": ("tools",),
    "notifications/prompts/list_changed": ("prompts",),
    "notifications/resources/list_changed": ("resources", "templates"),
}
_MAX_PAGES = 1000


@dataclass(eq=False, slots=True)
class Forwarded:
    """A request an agent made that is now waiting on an upstream."""

    listener: UpstreamListener
    down_id: Any
    method: str
    progress_token: Any
    deadline: float
    upstream: Upstream | None = None
    up_id: int = 0
    request: tuple[str, dict[str, Any]] = ("", {})  # what was forwarded, for a 2026-07-28 retry
    park: object | None = None  # set while a 2026-07-28 agent is being asked for input
    context: Any = None  # the observer's (spans, audit)


class UpstreamListener(Protocol):
    """The agent session an upstream reports to."""

    async def deliver(self, pending: Forwarded, message: jsonrpc.Message, raw: bytes | None = None) -> None: ...

    async def deliver_progress(self, pending: Forwarded, params: dict[str, Any]) -> None: ...

    async def fail(self, pending: Forwarded, error: UpstreamError) -> None: ...

    async def upstream_request(self, upstream: Upstream, message: jsonrpc.Message) -> None: ...

    async def upstream_cancelled(self, upstream: Upstream, request_id: Any) -> None: ...

    async def upstream_notification(self, upstream: Upstream, message: jsonrpc.Message) -> None: ...

    def upstream_changed(self, upstream: Upstream) -> None: ...


@dataclass(eq=False)
class _Call:
    """A request the firewall itself makes (initialize, list pages)."""

    done: anyio.Event = field(default_factory=anyio.Event)
    message: jsonrpc.Message | None = None


class Upstream:
    """A supervised connection to one upstream server."""

    def __init__(
        self,
        spec: UpstreamSpec,
        *,
        environ: Mapping[str, str] | None = None,
        open_transport_fn: Callable[[UpstreamSpec], Any] | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.state = "starting"
        self.lists = UpstreamLists(spec.name, spec.prefix)
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self.settled = anyio.Event()  # set once the first attempt to start has succeeded or failed
        self.listeners: list[UpstreamListener] = []
        self._environ = environ
        self._open = open_transport_fn or (lambda s: open_transport(s, environ))
        self._client: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._client_known = anyio.Event()
        self._transport: UpstreamTransport | None = None
        self._pending: dict[int, Forwarded | _Call] = {}
        self._next_id = 0
        self._tg: anyio.abc.TaskGroup | None = None
        self._stopped = False
        self.last_error = ""

    # -- lifecycle --------------------------------------------------------------------------------

    def introduce_client(self, capabilities: dict[str, Any], client_info: Mapping[str, Any]) -> None:
        """Give the agent's client capabilities (already narrowed by policy) and identity."""
        if self._client is None:
            self._client = (capabilities, dict(client_info))
            self._client_known.set()

    async def run(self) -> None:
        """Keep the upstream running until cancelled, restarting it with backoff when it fails."""
        backoff = 0.5
        while not self._stopped:
            started = anyio.current_time()
            try:
                await self._run_once()
            except UpstreamError as exc:
                self.last_error = exc.detail
            except OSError as exc:
                self.last_error = f"could not be started: {exc}"
            except Exception as exc:  # a broken upstream must never take the firewall down
                logger.exception("upstream %r failed", self.name)
                self.last_error = f"failed: {exc}"
            await self._went_down()
            if self._stopped:
                return
            if anyio.current_time() - started > 30:
                backoff = 0.5
            logger.warning("upstream %r: %s; restarting in %.1f s", self.name, self.last_error, backoff)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def stop(self) -> None:
        self._stopped = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _run_once(self) -> None:
        async with self._open(self.spec) as transport, anyio.create_task_group() as tg:
            self._tg = tg
            self._transport = transport
            tg.start_soon(self._read, transport, tg.cancel_scope)
            tg.start_soon(self._expire_requests)
            await self._client_known.wait()
            await self._initialize()
            await self._refresh(tuple(name for name, _, _ in _LISTS))
            self.state = "ready"
            self.last_error = ""
            self.settled.set()
            logger.info("upstream %r ready: %d tools", self.name, len(self.lists.tools))
            self._changed()
        self._tg = None

    async def _went_down(self) -> None:
        self._transport = None
        was_ready = self.state == "ready"
        self.state = "down"
        self.lists = UpstreamLists(self.name, self.spec.prefix)
        pending, self._pending = self._pending, {}
        error = UpstreamUnavailable(self.name, self.last_error or "the connection closed")
        for item in pending.values():
            if isinstance(item, _Call):
                item.done.set()
            else:
                await item.listener.fail(item, error)
        self.settled.set()
        if was_ready:
            self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener.upstream_changed(self)

    async def _read(self, transport: UpstreamTransport, scope: anyio.CancelScope) -> None:
        async for message, raw in transport.messages():
            await self._dispatch(message, raw)
        if not self._stopped:
            self.last_error = transport.describe_exit()
        scope.cancel()

    # -- the firewall's own requests ------------------------------------------------------------

    async def _initialize(self) -> None:
        assert self._client is not None
        capabilities, client_info = self._client
        info = client_info or {"name": "mcp-firewall", "version": __version__}
        params = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": capabilities, "clientInfo": info}
        result = await self.call("initialize", params)
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        await self.notify("notifications/initialized", None)

    async def call(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Send a request of the firewall's own and wait for its result (bounded by `timeout_s`)."""
        call = _Call()
        request_id = self._register(call)
        await self._send(jsonrpc.request(request_id, method, params))
        with anyio.move_on_after(self.spec.timeout_s) as scope:
            await call.done.wait()
        if scope.cancelled_caught:
            self._pending.pop(request_id, None)
            raise UpstreamTimeout(self.name, f"{method} did not answer within {self.spec.timeout_s:g} s")
        if call.message is None:
            raise UpstreamUnavailable(self.name, self.last_error or "the connection closed")
        if "error" in call.message:
            error = call.message["error"]
            raise UpstreamError(self.name, f"{method} failed: {error.get('message')} ({error.get('code')})")
        result = call.message.get("result")
        return result if isinstance(result, dict) else {}

    async def _refresh(self, kinds: tuple[str, ...]) -> None:
        updates: dict[str, tuple[dict[str, Any], ...]] = {}
        for kind, method, key in _LISTS:
            if kind in kinds and _CAPABILITY_OF_LIST[kind] in self.capabilities:
                updates[kind] = await self._fetch_all(method, key)
        self.lists = UpstreamLists(
            self.name,
            self.spec.prefix,
            tools=updates.get("tools", self.lists.tools),
            prompts=updates.get("prompts", self.lists.prompts),
            resources=updates.get("resources", self.lists.resources),
            templates=updates.get("templates", self.lists.templates),
        )

    async def _fetch_all(self, method: str, key: str) -> tuple[dict[str, Any], ...]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            result = await self.call(method, {"cursor": cursor} if cursor else None)
            items.extend(item for item in result.get(key) or () if isinstance(item, dict))
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return tuple(items)

    async def _refresh_and_report(self, kinds: tuple[str, ...]) -> None:
        try:
            await self._refresh(kinds)
        except UpstreamError as exc:
            logger.warning("%s", exc)
            return
        self._changed()

    # -- agents' requests ----------------------------------------------------------------------

    async def forward(self, pending: Forwarded, method: str, params: dict[str, Any]) -> None:
        """Send an agent's (already checked) request; the answer reaches `pending.listener`."""
        if self.state != "ready":
            raise UpstreamUnavailable(self.name, self.last_error or "it is still starting")
        pending.upstream = self
        pending.up_id = self._register(pending)
        if pending.progress_token is not None:  # the upstream's progress token is our request id
            params["_meta"] = {**params.get("_meta", {}), "progressToken": pending.up_id}
        try:
            await self._send(jsonrpc.request(pending.up_id, method, params))
        except UpstreamUnavailable:
            self._pending.pop(pending.up_id, None)
            raise

    def abandon(self, pending: Forwarded) -> None:
        self._pending.pop(pending.up_id, None)

    async def cancel(self, pending: Forwarded, reason: str) -> None:
        """Tell the upstream an agent's request is no longer wanted."""
        if self._pending.pop(pending.up_id, None) is not None and self._transport is not None:
            params = {"requestId": pending.up_id, "reason": reason}
            with anyio.CancelScope(shield=True):
                try:
                    await self.notify("notifications/cancelled", params)
                except UpstreamUnavailable:
                    pass

    async def respond(self, request_id: Any, message: jsonrpc.Message) -> None:
        """Answer a request the upstream made of the agent's client (result or error, id replaced)."""
        reply = {key: value for key, value in message.items() if key in ("result", "error")}
        await self._send({"jsonrpc": "2.0", "id": request_id, **reply})

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        await self._send(jsonrpc.notification(method, params))

    def _register(self, item: Forwarded | _Call) -> int:
        self._next_id += 1
        self._pending[self._next_id] = item
        return self._next_id

    async def _send(self, message: jsonrpc.Message) -> None:
        transport = self._transport
        if transport is None:
            raise UpstreamUnavailable(self.name, self.last_error or "it is not running")
        try:
            await transport.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise UpstreamUnavailable(self.name, f"the connection broke ({exc.__class__.__name__})") from exc

    # -- what the upstream sends ---------------------------------------------------------------

    async def _dispatch(self, message: jsonrpc.Message, raw: bytes | None = None) -> None:
        method = message.get("method")
        if method is None:
            await self._on_response(message, raw)
        elif "id" in message:
            await self._on_request(message)
        else:
            await self._on_notification(method, message)

    async def _on_response(self, message: jsonrpc.Message, raw: bytes | None) -> None:
        request_id = message.get("id")
        item = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if item is None:
            return  # late answer to something cancelled or timed out
        if isinstance(item, _Call):
            item.message = message
            item.done.set()
        else:
            await item.listener.deliver(item, message, raw)

    async def _on_request(self, message: jsonrpc.Message) -> None:
        if message["method"] == "ping":
            await self.respond(message["id"], {"result": {}})
            return
        if len(self.listeners) != 1:
            error = {"code": jsonrpc.INVALID_REQUEST, "message": "a shared upstream cannot make requests of clients"}
            await self.respond(message["id"], {"error": error})
            return
        await self.listeners[0].upstream_request(self, message)

    async def _on_notification(self, method: str, message: jsonrpc.Message) -> None:
        params = message.get("params") or {}
        if method == "notifications/progress":
            token = params.get("progressToken")  # the token is our request id
            item = self._pending.get(token) if isinstance(token, int) else None
            if isinstance(item, Forwarded) and item.progress_token is not None:
                await item.listener.deliver_progress(item, params)
        elif method == "notifications/cancelled":
            for listener in self.listeners:
                await listener.upstream_cancelled(self, params.get("requestId"))
        elif method in _LIST_CHANGED:
            if self._tg is not None and self.state == "ready":
                self._tg.start_soon(self._refresh_and_report, _LIST_CHANGED[method])
        else:
            for listener in self.listeners:
                await listener.upstream_notification(self, message)

    async def _expire_requests(self) -> None:
        """Answer requests the upstream has sat on longer than `timeout_s` (checked four times a second)."""
        while True:
            await anyio.sleep(0.25)
            now = anyio.current_time()
            expired = [item for item in self._pending.values() if isinstance(item, Forwarded) and item.deadline <= now]
            for item in expired:
                await self._time_out(item)

    async def _time_out(self, item: Forwarded) -> None:
        await self.cancel(item, "timed out")
        error = UpstreamTimeout(self.name, f"{item.method} did not answer within {self.spec.timeout_s:g} s")
        await item.listener.fail(item, error)


def deadline_after(seconds: float) -> float:
    return anyio.current_time() + seconds if math.isfinite(seconds) else math.inf


Opener = Callable[[UpstreamSpec], Awaitable[UpstreamTransport]]
