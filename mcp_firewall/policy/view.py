"""The seam between the proxy and the policy: what one agent may see and do, given a catalog.

The proxy asks an `AgentView` for every decision — list filtering, call checks, what an upstream may
ask of the agent's client — and never decides anything itself. A view is computed from a `Catalog`
once per change (upstream list change or policy reload); asking it is a few dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.policy.decision import ALLOW, HIDDEN, Decision

__all__ = ["AgentView", "Gate", "OpenGate", "OpenView"]

UPSTREAM_REQUEST_CAPABILITY = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


class AgentView(Protocol):
    def tools(self) -> list[dict[str, Any]]: ...

    def check_tool(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]: ...

    def prompts(self) -> list[dict[str, Any]]: ...

    def check_prompt(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]: ...

    def resources(self) -> list[dict[str, Any]]: ...

    def templates(self) -> list[dict[str, Any]]: ...

    def check_resource(self, uri: str) -> tuple[Decision, str | None]: ...


class Gate(Protocol):
    """The compiled policy as the proxy sees it.

    `view` filters a catalog for one agent; `refusal` says why an agent cannot be served at all
    (or None); the rest governs what an upstream may ask of the agent's client.
    """

    def view(self, agent: str, catalog: Catalog) -> AgentView: ...

    def refusal(self, agent: str) -> str | None: ...

    def check_upstream_request(self, agent: str, upstream: str, method: str) -> Decision: ...

    def capabilities_for(self, upstream: str, client_capabilities: Mapping[str, Any]) -> dict[str, Any]: ...

    def fixed_roots(self, upstream: str) -> list[dict[str, Any]] | None: ...


class OpenView:
    """Everything the catalog holds, unfiltered: the bare proxy, for routing tests and benchmarks."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def tools(self) -> list[dict[str, Any]]:
        return [route.as_exposed() for route in self._catalog.tools.values()]

    def check_tool(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]:
        route = self._catalog.tools.get(name)
        return (ALLOW, route) if route is not None else (HIDDEN, None)

    def prompts(self) -> list[dict[str, Any]]:
        return [route.as_exposed() for route in self._catalog.prompts.values()]

    def check_prompt(self, name: str, arguments: Mapping[str, Any]) -> tuple[Decision, Route | None]:
        route = self._catalog.prompts.get(name)
        return (ALLOW, route) if route is not None else (HIDDEN, None)

    def resources(self) -> list[dict[str, Any]]:
        return [dict(route.definition) for route in self._catalog.resources.values()]

    def templates(self) -> list[dict[str, Any]]:
        return [dict(route.definition) for route in self._catalog.templates]

    def check_resource(self, uri: str) -> tuple[Decision, str | None]:
        found = self._catalog.route_uri(uri)
        return (ALLOW, found[0]) if found is not None else (HIDDEN, None)


class OpenGate:
    """Allows everything: the bare proxy, for routing tests and the proxy-only benchmark."""

    def view(self, agent: str, catalog: Catalog) -> AgentView:
        return OpenView(catalog)

    def refusal(self, agent: str) -> str | None:
        return None

    def check_upstream_request(self, agent: str, upstream: str, method: str) -> Decision:
        return ALLOW

    def capabilities_for(self, upstream: str, client_capabilities: Mapping[str, Any]) -> dict[str, Any]:
        return dict(client_capabilities)

    def fixed_roots(self, upstream: str) -> list[dict[str, Any]] | None:
        return None
