"""Upstream entries of the firewall file: stdio, Streamable HTTP or legacy SSE, told apart by their keys.

`command` makes a stdio upstream; `url` an HTTP one, or SSE with `transport: sse`. Both or neither is an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator

from ._base import ConfigModel
from ._fields import describe

__all__ = ["HttpUpstream", "SseUpstream", "StdioUpstream", "Upstream"]


class _UpstreamBase(ConfigModel):
    timeout_s: float = Field(default=60, gt=0)
    """Seconds to wait for each request before it fails (default 60)."""
    prefix: bool = True
    """false: agents see this upstream's tools and prompts unrenamed (names that then collide are an error)."""
    shared: bool = False
    """true: one upstream session serves every agent session (only for stateless servers)."""


class StdioUpstream(_UpstreamBase):
    """An MCP server the firewall starts and talks to over stdin/stdout."""

    command: str
    """The program to run (looked up on PATH)."""
    args: list[str] = Field(default_factory=list)
    """Its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables set for it; values may use ${VAR} and ${VAR:-default}."""
    inherit_env: list[str] = Field(default_factory=list)
    """Names of the firewall's environment variables passed through (only these, plus a minimal base)."""
    cwd: str | None = None
    """Working directory; a relative path is relative to the firewall file (the loader resolves it)."""

    @property
    def kind(self) -> Literal["stdio"]:
        return "stdio"


class _UrlUpstream(_UpstreamBase):
    url: str
    """The server's endpoint, http:// or https://."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every request (upstream credentials live here, never with agents)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, found {describe(value)}")
        return value


class HttpUpstream(_UrlUpstream):
    """A Streamable HTTP MCP server (the default for `url`)."""

    transport: Literal["http"] = "http"
    """http (Streamable HTTP, the default) or sse (legacy HTTP+SSE)."""

    @field_validator("transport", mode="before")
    @classmethod
    def _known_transport(cls, value: Any) -> Any:
        if value != "http":
            raise ValueError(
                f"expected http (Streamable HTTP, the default) or sse (legacy HTTP+SSE), found {describe(value)}"
            )
        return value

    @property
    def kind(self) -> Literal["http"]:
        return "http"


class SseUpstream(_UrlUpstream):
    """A legacy HTTP+SSE MCP server."""

    transport: Literal["sse"]
    """sse: the legacy HTTP+SSE transport."""

    @property
    def kind(self) -> Literal["sse"]:
        return "sse"


def _upstream_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "command" in value:
            return "stdio"
        return "sse" if value.get("transport") == "sse" else "http"
    kind = getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None


def _upstream_shape(value: Any) -> Any:
    if isinstance(value, _UpstreamBase):
        return value
    if not isinstance(value, dict):
        raise ValueError(
            f"expected a mapping with `command` (a stdio server) or `url` (an HTTP or SSE server), "
            f"found {describe(value)}"
        )
    if "command" in value and "url" in value:
        raise ValueError(
            "give either `command` (a stdio server the firewall starts) or `url` (an HTTP or SSE server), not both"
        )
    if "command" not in value and "url" not in value:
        raise ValueError("missing `command` (a stdio server the firewall starts) or `url` (an HTTP or SSE server)")
    return value


Upstream = Annotated[
    Annotated[StdioUpstream, Tag("stdio")] | Annotated[HttpUpstream, Tag("http")] | Annotated[SseUpstream, Tag("sse")],
    Discriminator(_upstream_kind),
    BeforeValidator(_upstream_shape),
]
