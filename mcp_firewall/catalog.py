"""What the upstreams currently offer, under the names agents see.

A `Catalog` is plain data rebuilt whenever an upstream's lists change: tools and prompts keyed by
their exposed name (`<upstream>__<name>`, or unrenamed for `prefix: false`), resources by URI, and
resource templates in upstream order. The policy filters it per agent; the proxy routes with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing the SDK costs ~0.7 s; the firewall spawns its upstreams first
    from mcp.shared.uri_template import UriTemplate

__all__ = ["SEPARATOR", "Catalog", "Route", "TemplateRoute", "UpstreamLists", "exposed_name"]

logger = logging.getLogger(__name__)

SEPARATOR = "__"


def exposed_name(upstream: str, name: str, prefix: bool) -> str:
    return f"{upstream}{SEPARATOR}{name}" if prefix else name


@dataclass(frozen=True)
class UpstreamLists:
    """One upstream's advertised lists, every page fetched."""

    name: str
    prefix: bool
    tools: Sequence[dict[str, Any]] = ()
    prompts: Sequence[dict[str, Any]] = ()
    resources: Sequence[dict[str, Any]] = ()
    templates: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """An item an upstream advertises: where it lives and its definition as the upstream sent it."""

    upstream: str
    name: str  # the upstream's own name (or URI for resources)
    exposed: str  # the name agents see
    definition: Mapping[str, Any]

    def as_exposed(self) -> dict[str, Any]:
        if self.exposed == self.name:
            return dict(self.definition)
        return {**self.definition, "name": self.exposed}


@dataclass(frozen=True, slots=True)
class TemplateRoute:
    upstream: str
    template: UriTemplate
    definition: Mapping[str, Any]


@dataclass(frozen=True)
class Catalog:
    tools: Mapping[str, Route] = field(default_factory=dict)
    prompts: Mapping[str, Route] = field(default_factory=dict)
    resources: Mapping[str, Route] = field(default_factory=dict)
    templates: Sequence[TemplateRoute] = ()
    collisions: Sequence[str] = ()

    @classmethod
    def build(cls, lists: Iterable[UpstreamLists]) -> Catalog:
        collisions: list[str] = []
        tools: dict[str, Route] = {}
        prompts: dict[str, Route] = {}
        resources: dict[str, Route] = {}
        templates: list[TemplateRoute] = []
        colliding: set[str] = set()
        for up in lists:
            _add_named(tools, up, up.tools, "tool", collisions, colliding)
            _add_named(prompts, up, up.prompts, "prompt", collisions, colliding)
            for resource in up.resources:
                uri = resource.get("uri")
                if isinstance(uri, str) and uri not in resources:
                    resources[uri] = Route(up.name, uri, uri, resource)
            templates.extend(_templates(up))
        for name in colliding:  # fail closed: neither of two same-named tools is reachable
            tools.pop(name, None)
            prompts.pop(name, None)
        return cls(tools, prompts, resources, tuple(templates), tuple(collisions))

    def route_uri(self, uri: str) -> tuple[str, Mapping[str, Any]] | None:
        """The upstream that listed this URI, or whose resource template matches it."""
        resource = self.resources.get(uri)
        if resource is not None:
            return resource.upstream, resource.definition
        for route in self.templates:
            if route.template.match(uri) is not None:
                return route.upstream, route.definition
        return None

    def upstream_of_template(self, uri_template: str) -> str | None:
        for route in self.templates:
            if str(route.template) == uri_template:
                return route.upstream
        return None


def _add_named(
    into: dict[str, Route],
    up: UpstreamLists,
    items: Sequence[dict[str, Any]],
    kind: str,
    collisions: list[str],
    colliding: set[str],
) -> None:
    for item in items:
        name = item.get("name")
        if not isinstance(name, str):
            continue
        exposed = exposed_name(up.name, name, up.prefix)
        existing = into.get(exposed)
        if existing is not None:
            message = (
                f"{kind} name {exposed!r} is offered by upstreams {existing.upstream!r} and {up.name!r}; "
                "both are hidden until one of them sets `prefix: true`"
            )
            collisions.append(message)
            colliding.add(exposed)
            logger.error("%s", message)
            continue
        into[exposed] = Route(up.name, name, exposed, item)


def _templates(up: UpstreamLists) -> list[TemplateRoute]:
    if not up.templates:
        return []
    from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

    routes = []
    for definition in up.templates:
        text = definition.get("uriTemplate")
        if not isinstance(text, str):
            continue
        try:
            routes.append(TemplateRoute(up.name, UriTemplate.parse(text), definition))
        except InvalidUriTemplate as exc:
            logger.warning("upstream %r: resource template %r cannot be matched: %s", up.name, text, exc)
    return routes
