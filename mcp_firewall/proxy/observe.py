"""The seam where every request is recorded: spans, metrics and the audit log plug in here.

The session calls `begin` when an agent's request has been decided (before anything is forwarded),
`forwarding` just before it writes the request upstream (to inject trace context into `_meta`), and
`end` once the answer is relayed (or the request failed, was denied, or was cancelled). `begin` may
raise `AuditWriteError`: the session then refuses the request (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_firewall.policy.decision import Decision

__all__ = ["NullObserver", "Observer", "RequestInfo"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What is known about one agent request when it is decided."""

    agent: str
    session_id: str
    protocol_version: str
    method: str
    request_id: Any
    target: str | None = None  # the tool or prompt name the agent used, or the resource URI
    upstream: str | None = None
    arguments: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None  # the request's params._meta (trace context lives here)
    transport: str = "pipe"


class Observer(Protocol):
    def begin(self, info: RequestInfo, decision: Decision | None) -> Any: ...

    def forwarding(self, context: Any, meta: dict[str, Any]) -> None: ...

    def end(self, context: Any, *, error_type: str | None = None, is_error: bool = False) -> None: ...

    def quarantined(self, upstream: str, tool: str, diff: str) -> None:
        """`tool` (the upstream's own name) is hidden: its definition differs from tools.lock, or the lock
        does not know it. Called once per tool and changed definition; `diff` is what changed, as shown
        on stderr. Record it in the audit log and as a span event."""
        ...

    def close_session(self, session_id: str) -> None:
        """The agent's session ended (stdio: the agent closed stdin; HTTP: the session was deleted or expired)."""
        ...

    async def run(self) -> None:
        """Background work off the request path, for as long as the transport serves (started in its task group)."""
        ...


class NullObserver:
    """Records nothing: the bare proxy."""

    def begin(self, info: RequestInfo, decision: Decision | None) -> Any:
        return None

    def forwarding(self, context: Any, meta: dict[str, Any]) -> None:
        return None

    def end(self, context: Any, *, error_type: str | None = None, is_error: bool = False) -> None:
        return None

    def quarantined(self, upstream: str, tool: str, diff: str) -> None:
        return None

    def close_session(self, session_id: str) -> None:
        return None

    async def run(self) -> None:
        return None
