"""Legacy HTTP+SSE (protocol 2024-11-05 transport): `GET /sse` opens a session's event stream, whose first
event names the URL (`/messages/?session_id=…`) that the client POSTs its messages to.

The SDK's `SseServerTransport` carries it, bridged to an `AgentSession` like Streamable HTTP. A session
belongs to the agent that opened it: a message posted with another agent's credential gets the same 404
as an unknown session. Streams carry keep-alive comments every 15 s.
"""

from __future__ import annotations

import secrets

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.sse import SseServerTransport
from starlette.types import Receive, Scope, Send

from mcp_firewall.proxy.http import SessionHost, _plain
from mcp_firewall.proxy.http_streamable import sdk_messages, sdk_sink
from mcp_firewall.proxy.identity import Credential

__all__ = ["SseTransport"]


def _principal(agent: str) -> AuthenticatedUser:
    """What the SDK transport compares to bind a session to its owner: the agent's name, never the credential."""
    return AuthenticatedUser(AccessToken(token="-", client_id=agent, scopes=[]))


class SseTransport:
    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.sse = SseServerTransport("/messages/", max_request_body_size=host.options.max_message_bytes)

    async def handle_stream(self, scope: Scope, receive: Receive, send: Send, credential: Credential) -> None:
        if scope["method"] != "GET":
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET")])
            return
        scope["user"] = _principal(credential.agent)
        async with self.sse.connect_sse(scope, receive, send) as (read, write):
            await self.host.serve_session(credential.agent, secrets.token_hex(16), sdk_messages(read), sdk_sink(write))

    async def handle_message(self, scope: Scope, receive: Receive, send: Send, credential: Credential) -> None:
        scope["user"] = _principal(credential.agent)
        await self.sse.handle_post_message(scope, receive, send)
