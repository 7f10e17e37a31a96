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

from collections.abc import Mapping
from typing import ClassVar

from mcp_firewall.proxy.session_core import Handler
from mcp_firewall.proxy.session_requests import RequestHandlers
from mcp_firewall.proxy.session_upstream import UpstreamEvents

__all__ = ["AgentSession"]


class AgentSession(RequestHandlers, UpstreamEvents):
    """Serves one agent connection over any transport that carries whole JSON-RPC messages."""

    _HANDLERS: ClassVar[Mapping[str, Handler]] = {
        "initialize": RequestHandlers._initialize,
        "server/discover": RequestHandlers._discover,
        "ping": RequestHandlers._ping,
        "tools/list": RequestHandlers._list_tools,
        "tools/call": RequestHandlers._call_tool,
        "prompts/list": RequestHandlers._list_prompts,
        "prompts/get": RequestHandlers._get_prompt,
        "resources/list": RequestHandlers._list_resources,
        "resources/templates/list": RequestHandlers._list_templates,
        "resources/read": RequestHandlers._read_resource,
        "resources/subscribe": RequestHandlers._resource_subscribe,
        "resources/unsubscribe": RequestHandlers._resource_unsubscribe,
        "completion/complete": RequestHandlers._complete_argument,
        "logging/setLevel": RequestHandlers._set_level,
        "subscriptions/listen": RequestHandlers._listen,
    }
