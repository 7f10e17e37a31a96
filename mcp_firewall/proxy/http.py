"""Serve agents over HTTP: Streamable HTTP at `/mcp` (`--transport http`) or legacy HTTP+SSE at `/sse` and
`/messages/` (`--transport sse`), each request proven by a credential (SPEC §5).

Every request passes the same gate, in this order, before any MCP code sees it:

1. the path (404 for anything else);
2. `Host` and `Origin` (403: DNS rebinding; loopback names only by default on a loopback address);
3. the credential (`identity.Authenticator`): 401 with `WWW-Authenticate: Bearer` and an empty body;
4. the agent (403 when the policy refuses it: unknown, expired, wrong environment);
5. the body: at most `limits.max_message_bytes` (413), one JSON-RPC message parsed strictly (400 and a
   JSON-RPC error for duplicate keys, invalid UTF-8, lone surrogates, batches). The parsed value rides
   in the ASGI scope, so what the session decides is exactly what was checked.

The request is then served under a cancel scope that ends when its credential does: at the credential's
expiry, or as soon as its key is revoked (the keys file is watched), so an open stream is cut too.

Sessions (`http_streamable`, `http_sse`) each get an `AgentSession` with their own upstream connections,
except upstreams marked `shared: true`, which are connected once here and serve every session. Request
headers, the agent's credential included, never reach a session, an upstream or a log.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from starlette.types import Message, Receive, Scope, Send

from mcp_firewall.errors import CredentialError
from mcp_firewall.policy.view import Gate
from mcp_firewall.proxy import jsonrpc
from mcp_firewall.proxy.identity import Authenticator, Credential
from mcp_firewall.proxy.observe import Observer
from mcp_firewall.proxy.session import AgentSession
from mcp_firewall.proxy.transports import UpstreamSpec
from mcp_firewall.proxy.upstream import Upstream

__all__ = [
    "PARSED_MESSAGE",
    "FirewallApp",
    "HttpOptions",
    "OriginGuard",
    "SessionHost",
    "build_app",
    "is_loopback",
    "serve_http",
]

logger = logging.getLogger(__name__)


PARSED_MESSAGE = "mcp_firewall.message"  # ASGI scope key: the request body, parsed strictly
CREDENTIAL = "mcp_firewall.credential"  # ASGI scope key: the proven Credential
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WATCH_SECONDS = 0.25


@dataclass(frozen=True)
class HttpOptions:
    """How the HTTP front end behaves; the defaults suit a production deployment."""

    transport: str = "http"  # "http" (Streamable HTTP) or "sse" (legacy HTTP+SSE)
    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = 4 * 1024 * 1024
    allowed_hosts: Sequence[str] = ()
    allowed_origins: Sequence[str] = ()
    session_idle_timeout_s: float = 30 * 60
    max_sessions: int = 10_000
    retry_interval_ms: int = 2_000  # suggested to clients in SSE priming events (resumable streams)
    events_per_stream: int = 100  # kept per session for resumption (Last-Event-ID)


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, str | None]:
    """`name[:port]` of a Host header (or of an origin's netloc), the name lowercased, brackets kept off."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    return (name, port) if sep and port.isdigit() else (value, None)


class OriginGuard:
    """DNS-rebinding protection: which `Host` and `Origin` headers are accepted (others get 403).

    `allowed_hosts` entries are `name` (any port), `name:port` or `name:*`; `allowed_origins` entries are
    full origins (`https://app.example.com`, `http://localhost:*`). With no list and a loopback listen
    address, only loopback names (localhost, 127.0.0.1, [::1]) are accepted, on any port. A request
    without `Origin` (not from a browser) passes the origin check.
    """

    def __init__(self, options: HttpOptions) -> None:
        loopback = is_loopback(options.host)
        self._hosts = [_split_host(h) for h in options.allowed_hosts]
        self._check_hosts = bool(self._hosts) or loopback
        if not self._hosts and loopback:
            self._hosts = [(name, "*") for name in _LOOPBACK_NAMES]
        self._origins = [o.lower().rstrip("/") for o in options.allowed_origins]
        self._loopback_origins = loopback and not self._origins

    def host_allowed(self, host: str | None) -> bool:
        if not self._check_hosts:
            return True
        if not host:
            return False
        name, port = _split_host(host)
        return any(name == n and (p in (None, "*") or p == port) for n, p in self._hosts)

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        origin = origin.lower().rstrip("/")
        if origin in self._origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        for allowed in self._origins:
            if allowed.endswith(":*") and origin.startswith(allowed[:-2] + ":"):
                return True
        return self._loopback_origins and _split_host(parts.netloc)[0] in _LOOPBACK_NAMES


class SessionHost:
    """What every agent session shares: the policy, the observer, shared upstreams, the task group."""

    def __init__(
        self,
        *,
        specs: Sequence[UpstreamSpec],
        gate: Callable[[], Gate],
        options: HttpOptions,
        observer: Observer | None = None,
        environ: Mapping[str, str] | None = None,
        upstream_factory: Callable[[UpstreamSpec], Upstream] | None = None,
        policy_listeners: list[Callable[[], None]] | None = None,
        pins: Any = None,
    ) -> None:
        self.gate = gate
        self.options = options
        self.observer = observer
        self._specs = list(specs)
        self._make = upstream_factory or (lambda spec: Upstream(spec, environ=environ))
        self._shared = [self._make(spec) for spec in self._specs if spec.shared]
        self._listeners = policy_listeners
        self._pins = pins  # tools.lock (`lockfile.Pins`): changed tools are quarantined
        self.sessions: set[AgentSession] = set()
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("the HTTP front end is not running (ASGI lifespan not started)")
        return self._tg

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the task group that sessions and shared upstreams run in, until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for upstream in self._shared:
                tg.start_soon(upstream.run)
            if self._pins is not None:
                tg.start_soon(self._pins.watch)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None
                for upstream in self._shared:
                    upstream.stop()

    async def serve_session(self, agent: str, session_id: str, messages: Any, sink: Any) -> None:
        """Run one agent session (its private upstreams included) until `messages` ends or it is cancelled."""
        private = [self._make(spec) for spec in self._specs if not spec.shared]
        shared = {up.name: up for up in self._shared}
        upstreams = [shared.get(spec.name) or private.pop(0) for spec in self._specs]
        own = [up for up in upstreams if up.name not in shared]

        async def no_bytes(data: bytes) -> None:  # every message goes through `sink`
            raise AssertionError("HTTP sessions write through their sink")

        session = AgentSession(
            agent=agent,
            gate=self.gate,
            upstreams=upstreams,
            write=no_bytes,
            sink=sink,
            session_id=session_id,
            max_message_bytes=self.options.max_message_bytes,
            observer=self.observer,
            transport="tcp",
            pins=self._pins,
        )
        self.sessions.add(session)
        watchers = [w for w in (self._listeners, getattr(self._pins, "listeners", None)) if w is not None]
        for listeners in watchers:
            listeners.append(session.refresh_view)
        try:
            async with anyio.create_task_group() as tg:
                for upstream in own:
                    tg.start_soon(upstream.run)
                await session.serve(messages)
                for upstream in own:
                    upstream.stop()
                tg.cancel_scope.cancel()
        except Exception:  # one broken session must never take the others down
            logger.exception("session %s of agent %r failed", session_id[:8], agent)
        finally:
            session.close()
            self.sessions.discard(session)
            for listeners in watchers:
                if session.refresh_view in listeners:
                    listeners.remove(session.refresh_view)


@dataclass(eq=False)
class _Live:
    """An HTTP request being served, and the credential it was let in with."""

    credential: Credential
    scope: anyio.CancelScope
    started: bool = False
    finished: bool = False


@dataclass
class _Counters:
    unauthorized: int = 0
    forbidden: int = 0
    requests: int = 0
    cut: int = 0


Handler = Callable[[Scope, Receive, Send, Credential], Awaitable[None]]


class FirewallApp:
    """The ASGI application: the gate above, then the transport's handlers."""

    def __init__(self, host: SessionHost, authenticator: Authenticator) -> None:
        from mcp_firewall.proxy.http_sse import SseTransport
        from mcp_firewall.proxy.http_streamable import StreamableTransport

        self.host = host
        self.options = host.options
        self.authenticator = authenticator
        self.guard = OriginGuard(self.options)
        self.counters = _Counters()
        self._live: set[_Live] = set()
        self._routes: dict[str, Handler]
        if self.options.transport == "sse":
            sse = SseTransport(host)
            self._routes = {
                "/sse": sse.handle_stream,
                "/messages/": sse.handle_message,
                "/messages": sse.handle_message,
            }
        else:
            streamable = StreamableTransport(host)
            self._routes = {"/mcp": streamable.handle, "/mcp/": streamable.handle}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        handler = self._routes.get(scope["path"])
        if handler is None:
            await _plain(send, 404, b"Not Found")
            return
        headers = _headers(scope)
        if not self.guard.host_allowed(headers.get("host")) or not self.guard.origin_allowed(headers.get("origin")):
            self.counters.forbidden += 1
            await _plain(send, 403, b"Forbidden: Host or Origin not allowed")
            return
        try:
            credential = await self.authenticator.authenticate(headers.get("authorization"))
        except CredentialError as exc:
            self.counters.unauthorized += 1
            logger.info("401 for %s %s: %s", scope.get("method"), scope["path"], exc)
            await _unauthorized(send)
            return
        if (refusal := self.host.gate().refusal(credential.agent)) is not None:
            self.counters.forbidden += 1
            logger.warning("403 for agent %r: %s", credential.agent, refusal)
            await _json_error(send, 403, None, jsonrpc.INVALID_REQUEST, "Forbidden: this agent is not served")
            return
        self.counters.requests += 1
        scope[CREDENTIAL] = credential
        if scope.get("method") == "POST":
            replayed = await self._read_body(scope, receive, send)
            if replayed is None:
                return
            receive = replayed
        await self._serve_live(handler, scope, receive, send, credential)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Read the whole body (bounded), parse it strictly, and hand the handler a replay of it."""
        limit = self.options.max_message_bytes
        declared = _headers(scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _json_error(send, 413, None, jsonrpc.PARSE_ERROR, f"Parse error: message exceeds {limit} bytes")
            return None
        chunks: list[bytes] = []
        size = 0
        trailing: list[Message] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                trailing.append(message)
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _json_error(send, 413, None, jsonrpc.PARSE_ERROR, f"Parse error: message exceeds {limit} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            scope[PARSED_MESSAGE] = jsonrpc.load_untrusted(body, limit)
        except jsonrpc.MessageError as exc:
            await _json_error(send, 400, exc.request_id, exc.code, exc.message)
            return None
        replay = [{"type": "http.request", "body": body, "more_body": False}, *trailing]

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        return replayed

    async def _serve_live(self, handler: Handler, scope: Scope, receive: Receive, send: Send, cred: Credential) -> None:
        """Serve under a scope that the credential's expiry or revocation cancels."""
        deadline = math.inf
        if cred.expires_at is not None:
            deadline = anyio.current_time() + (cred.expires_at - time.time())
        live = _Live(cred, anyio.CancelScope(deadline=deadline))

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                live.started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                live.finished = True
            await send(message)

        self._live.add(live)
        try:
            with live.scope:
                await handler(scope, receive, tracked, cred)
        finally:
            self._live.discard(live)
        if live.scope.cancelled_caught:
            self.counters.cut += 1
            logger.info(
                "closed a %s %s: its credential %s expired or was revoked", scope["method"], scope["path"], cred.id
            )
            with anyio.CancelScope(shield=True):
                if not live.started:
                    await _unauthorized(send)
                elif not live.finished:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch_credentials(self) -> None:
        """Reload the keys file when it changes, and cut open streams whose key was revoked or expired."""
        while True:
            await anyio.sleep(_WATCH_SECONDS)
            await self.authenticator.refresh_keys()
            for live in list(self._live):
                if not self.authenticator.still_valid(live.credential):
                    live.scope.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = False
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.host.run)
                tg.start_soon(self._watch_credentials)
                await send({"type": "lifespan.startup.complete"})
                started = True
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                tg.cancel_scope.cancel()
        except Exception as exc:
            logger.exception("the HTTP front end failed")
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers by lowercase name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


async def _plain(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _unauthorized(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"www-authenticate", b'Bearer realm="mcp-firewall"'), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _json_error(send: Send, status: int, request_id: Any, code: int, message: str) -> None:
    body = jsonrpc.dump(jsonrpc.error_response(request_id, code, message)).rstrip(b"\n")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def serve_http(
    app: FirewallApp, *, ready: Callable[[str], None] | None = None, stop: anyio.Event | None = None
) -> None:
    """Run `app` under uvicorn on the options' host and port until SIGINT/SIGTERM (or `stop` is set)."""
    import uvicorn

    options = app.options
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_level=logging.getLogger("mcp_firewall").getEffectiveLevel(),
        access_log=False,  # request lines carry no credential, but keep the log for decisions
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:  # uvicorn offers no event for "bound and serving"  # noqa: ASYNC110
            await anyio.sleep(0.02)
        sockets = [s for srv in server.servers for s in srv.sockets]
        host, port = sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        paths = "/sse (messages to /messages/)" if options.transport == "sse" else "/mcp"
        url = f"http://{shown}:{port}{paths}"
        if ready is not None:
            ready(url)

    async def stop_on_request() -> None:
        if stop is not None:
            await stop.wait()
            server.should_exit = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        tg.start_soon(stop_on_request)
        await server.serve()
        tg.cancel_scope.cancel()


DEFAULT_PORT = 8080


def build_app(
    config: Any,
    *,
    gate: Callable[[], Gate],
    specs: Sequence[UpstreamSpec],
    transport: str,
    host: str,
    port: int | None,
    agent: str | None,
    explicit_agent: bool = False,
    policy_listeners: list[Callable[[], None]] | None = None,
    pins: Any = None,
    observer: Observer | None = None,
    upstream_factory: Callable[[UpstreamSpec], Upstream] | None = None,
    options: Mapping[str, Any] | None = None,
) -> FirewallApp:
    """The app for `run --transport http|sse` from a `LoadedConfig`; `ValueError` says what cannot start."""
    from mcp_firewall.keys import KeyRing
    from mcp_firewall.proxy.identity import JwtVerifier

    auth = config.firewall.auth
    keys = KeyRing(auth.keys) if auth is not None and auth.keys is not None else None
    verifier = JwtVerifier(auth.jwt) if auth is not None and auth.jwt is not None else None
    local_agent: str | None = None
    if keys is None and verifier is None:
        if not agent:
            raise ValueError(
                f"--transport {transport} needs credentials: an `auth` section (keys and/or jwt) in the firewall "
                "file, or --agent NAME to serve every request as one agent (loopback addresses only)"
            )
        if not is_loopback(host):
            raise ValueError(
                f"refusing to start: with no `auth` section every request would be agent {agent!r}, "
                f"so only a loopback address may be used (not {host!r})"
            )
        if (refusal := gate().refusal(agent)) is not None:
            raise ValueError(f"refusing to start: {refusal}")
        local_agent = agent
    elif explicit_agent:
        raise ValueError("--agent cannot be used with an `auth` section: over HTTP each credential names its agent")
    if keys is not None:
        keys.load()  # a KeyFileError stops the start-up: better than refusing every key later
    settings: dict[str, Any] = {
        "transport": transport,
        "host": host,
        "port": DEFAULT_PORT if port is None else port,
        "max_message_bytes": config.firewall.limits.max_message_bytes,
        "allowed_hosts": tuple(auth.allowed_hosts) if auth is not None else (),
        "allowed_origins": tuple(auth.allowed_origins) if auth is not None else (),
    }
    http_options = HttpOptions(**{**settings, **(options or {})})
    if not is_loopback(host) and not http_options.allowed_hosts:
        logger.warning("listening on %s without auth.allowed_hosts: the Host header is not checked", host)
    session_host = SessionHost(
        specs=specs,
        gate=gate,
        options=http_options,
        observer=observer,
        policy_listeners=policy_listeners,
        pins=pins,
        upstream_factory=upstream_factory,
    )
    return FirewallApp(session_host, Authenticator(keys=keys, jwt_verifier=verifier, local_agent=local_agent))
