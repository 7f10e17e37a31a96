"""Pydantic models of the files people write: `firewall.yaml` (SPEC §2, §5) and scope files (SPEC §3).

All models forbid unknown keys and are frozen. Objects made by the loader know where they were written:
`obj.location` is `FILE:LINE:COL` (`obj.source` the structured `Location`); for a named entry (an upstream,
a scope, an agent, a server) that is the position of its key, for a list item (a rule) its first key.
Objects built in code have `location == "<unknown>"`. Equality compares values, never locations.

The upstream models live in `_upstreams.py`, argument constraints in `_constraints.py`; both are
re-exported here, which is the one module to import models from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ._base import ConfigModel, Location, set_source
from ._constraints import ArgConstraint, UrlConstraint, drop_null
from ._fields import AgentName, ArgPath, Expires, ScopeName, UpstreamName, describe
from ._upstreams import HttpUpstream, SseUpstream, StdioUpstream, Upstream

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "Agent",
    "AllowRule",
    "ArgConstraint",
    "Audit",
    "Auth",
    "ConfigModel",
    "DenyRule",
    "FirewallFile",
    "HttpUpstream",
    "Jwt",
    "Limits",
    "Listen",
    "Location",
    "Scope",
    "ScopeFile",
    "ServerPolicy",
    "SseUpstream",
    "StdioUpstream",
    "Telemetry",
    "Upstream",
    "UrlConstraint",
    "set_source",
]

DEFAULT_REDACT_KEYS = (
    "password",
    "token",
    "secret",
    "authorization",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "cookie",
    "credential",
)


# ---------------------------------------------------------------------------------------------- firewall file


class Listen(ConfigModel):
    """How agents connect."""

    transport: Literal["stdio", "http", "sse"] = "stdio"
    """stdio, http (Streamable HTTP at /mcp) or sse (legacy HTTP+SSE at /sse)."""
    host: str = "127.0.0.1"
    """Address to bind for http and sse."""
    port: int | None = Field(default=None, ge=0, le=65535)
    """Port for http and sse (0: any free port)."""


class Audit(ConfigModel):
    """The hash-chained JSON Lines audit log."""

    path: str
    """The log file; a relative path is relative to the firewall file."""
    fsync: Literal["always", "batch", "never"] = "batch"
    """always: sync each decision before forwarding; batch: at least every 100 ms; never: leave it to the OS."""
    on_failure: Literal["deny", "allow"] = "deny"
    """What happens to a call whose record cannot be written."""
    max_bytes: int | None = Field(default=None, gt=0)
    """Rotate the log when it reaches this size."""


class Telemetry(ConfigModel):
    """OpenTelemetry spans (OTEL_* environment variables are honoured too)."""

    exporter: Literal["none", "console", "otlp", "jsonl"] = "none"
    """Where spans go."""
    endpoint: str | None = None
    """otlp: base URL, as OTEL_EXPORTER_OTLP_ENDPOINT (/v1/traces is appended)."""
    path: str | None = None
    """jsonl: the file spans are appended to; relative to the firewall file."""
    protocol: Literal["http", "grpc"] = "http"
    """otlp: the OTLP protocol."""
    record_arguments: bool = False
    """Record tool arguments on spans (with secrets redacted)."""
    redact_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACT_KEYS))
    """Argument keys whose values are redacted (case-insensitive substring match)."""
    service_name: str = "mcp-firewall"
    """service.name of the spans."""

    @model_validator(mode="after")
    def _jsonl_needs_path(self) -> Telemetry:
        if self.exporter == "jsonl" and self.path is None:
            raise ValueError("exporter jsonl needs `path`: the file spans are written to")
        return self


class Limits(ConfigModel):
    """Sizes beyond which input is refused."""

    max_message_bytes: int = Field(default=4194304, gt=0)
    """A larger JSON-RPC message is refused."""


JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_DEFAULT_JWT_ALGORITHMS: tuple[JwtAlgorithm, ...] = ("RS256", "ES256")


class Jwt(ConfigModel):
    """JWTs from one issuer prove agents' identities (signature, iss, aud, exp and nbf are checked)."""

    issuer: str
    """The expected `iss`."""
    audience: str
    """The expected `aud`."""
    jwks: str
    """The issuer's keys: a JWKS file (relative to the firewall file) or an https URL."""
    agent_claim: str = "sub"
    """The claim that names the agent."""
    algorithms: list[JwtAlgorithm] = Field(default_factory=lambda: list(_DEFAULT_JWT_ALGORITHMS), min_length=1)
    """Accepted signature algorithms (asymmetric only: `none` and HS* are refused)."""
    leeway_s: float = Field(default=30, ge=0)
    """Clock skew tolerated on exp and nbf, in seconds."""


class Auth(ConfigModel):
    """How HTTP and SSE agents prove who they are, and which Host/Origin headers are accepted."""

    keys: str | None = None
    """The API key hash file maintained by `mcp-firewall keys`; relative to the firewall file."""
    jwt: Jwt | None = None
    """Accept JWTs from one issuer."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins accepted in the Origin header (others get 403)."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Values accepted in the Host header (others get 403)."""


class FirewallFile(ConfigModel):
    """firewall.yaml: what the operator writes once (SPEC §2)."""

    upstreams: dict[UpstreamName, Upstream] = Field(min_length=1)
    """The MCP servers the firewall connects to, by name."""
    scopes: list[str]
    """Scope files, and folders of them read one level deep (*.yaml, *.yml); relative to this file."""
    environment: str | None = None
    """This deployment's name; agents with `environments` are refused elsewhere."""
    listen: Listen = Field(default_factory=Listen)
    """How agents connect."""
    audit: Audit | None = None
    """The audit log (none when absent)."""
    telemetry: Telemetry = Field(default_factory=Telemetry)
    """OpenTelemetry spans."""
    limits: Limits = Field(default_factory=Limits)
    """Size limits."""
    auth: Auth | None = None
    """Agent authentication for http and sse."""


# ---------------------------------------------------------------------------------------------- scope files


class ServerPolicy(ConfigModel):
    """How one upstream's tools are classified, and what the upstream may ask of the agent's client."""

    read: list[str] = Field(default_factory=list)
    """Tools (names or globs) that change nothing."""
    write: list[str] = Field(default_factory=list)
    """Tools that change state in a way that can be undone or is additive."""
    destructive: list[str] = Field(default_factory=list)
    """Tools that delete, overwrite, move or spend. Unlisted tools are destructive too."""
    trust_annotations: bool = False
    """true: unlisted tools take their class from the upstream's readOnlyHint/destructiveHint."""
    sampling: Literal["allow", "deny"] = "deny"
    """The upstream's sampling/createMessage requests to the agent's client."""
    elicitation: Literal["allow", "deny"] = "deny"
    """The upstream's elicitation/create requests."""
    roots: Literal["deny", "allow"] | list[str] = "deny"
    """roots/list: deny, allow (relay the client's roots), or a fixed list of root URIs the firewall answers."""

    @field_validator("roots", mode="before")
    @classmethod
    def _roots_shape(cls, value: Any) -> Any:
        if value in ("deny", "allow") or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError(f"expected deny, allow or a list of root URIs, found {describe(value)}")


_SELECTOR_KEYS = ("tools", "resources", "prompts")


def _allow_rule_schema(schema: dict[str, Any]) -> None:
    drop_null(schema)
    schema["oneOf"] = [{"required": [key]} for key in _SELECTOR_KEYS]


class AllowRule(ConfigModel, json_schema_extra=_allow_rule_schema):
    """Grants the tools, resources or prompts it selects, where every argument constraint holds."""

    tools: list[str] | None = None
    """Tool selectors: exact name, glob (`*`), or U:read / U:write / U:destructive."""
    resources: list[str] | None = None
    """Resource URI globs (`*` within one segment, `**` across segments)."""
    prompts: list[str] | None = None
    """Prompt selectors: exact name or glob."""
    args: dict[ArgPath, ArgConstraint] = Field(default_factory=dict)
    """Argument path (`path`, `options.mode`, `paths[*]`, `edits[*].path`) to constraint."""

    @model_validator(mode="after")
    def _one_selector(self) -> AllowRule:
        given = [key for key in _SELECTOR_KEYS if key in self.model_fields_set]
        if len(given) != 1:
            found = " and ".join(given) if given else "none of them"
            raise ValueError(f"an allow rule takes exactly one of tools, resources or prompts; found {found}")
        if getattr(self, given[0]) is None:
            raise ValueError(f"`{given[0]}` is empty: expected a list of selectors")
        if self.args and given[0] == "resources":
            raise ValueError("`args` applies to tools and prompts only, not to resources")
        return self

    @property
    def kind(self) -> Literal["tools", "resources", "prompts"]:
        """Which of tools, resources or prompts this rule selects."""
        if self.tools is not None:
            return "tools"
        return "resources" if self.resources is not None else "prompts"

    @property
    def selectors(self) -> list[str]:
        """The selectors of `kind`."""
        return self.tools or self.resources or self.prompts or []


class Scope(ConfigModel):
    """A named set of grants."""

    description: str | None = None
    """What the scope is for."""
    mode: Literal["enforce", "shadow"] = "enforce"
    """shadow: calls this scope would deny are forwarded and recorded as shadow-deny."""
    allow: list[AllowRule]
    """The grants; a call is allowed when any rule that selects it holds."""


class DenyRule(ConfigModel):
    """Wins over every grant."""

    tools: list[str] = Field(default_factory=list)
    """Tool selectors (name, glob, U:read / U:write / U:destructive)."""
    resources: list[str] = Field(default_factory=list)
    """Resource URI globs."""
    prompts: list[str] = Field(default_factory=list)
    """Prompt selectors."""
    agents: list[str] = Field(default_factory=lambda: ["*"])
    """The agents (names or globs) it applies to; default every agent."""
    reason: str | None = None
    """Why; shown in decisions and the audit log."""

    @model_validator(mode="after")
    def _selects_something(self) -> DenyRule:
        if not (self.tools or self.resources or self.prompts):
            raise ValueError("a deny rule needs at least one of tools, resources or prompts")
        return self


class Agent(ConfigModel):
    """An identity that connects to the firewall, and the scopes it holds."""

    description: str | None = None
    """What the agent does."""
    owner: str | None = None
    """Who answers for it."""
    scopes: list[str]
    """Scope names: defined scopes or built-ins U:read, U:write, U:destructive."""
    environments: list[str] | None = None
    """Where it may run, compared with the firewall file's `environment`."""
    expires: Expires | None = None
    """A date (the agent works through the end of that day, UTC) or a date-time with a zone."""
    mode: Literal["enforce", "shadow"] = "enforce"
    """shadow: calls that would be hidden or denied are forwarded and recorded as shadow-deny."""

    @property
    def expires_at(self) -> datetime | None:
        """`expires` as the first instant the agent is refused (a date means the next midnight, UTC)."""
        if self.expires is None or isinstance(self.expires, datetime):
            return self.expires
        return datetime.combine(self.expires, datetime.min.time(), UTC) + timedelta(days=1)


class ScopeFile(ConfigModel):
    """One scope file, or several merged (SPEC §3)."""

    servers: dict[UpstreamName, ServerPolicy] = Field(default_factory=dict)
    """Per upstream: tool classes and client capabilities."""
    scopes: dict[ScopeName, Scope] = Field(default_factory=dict)
    """Named sets of grants."""
    deny: list[DenyRule] = Field(default_factory=list)
    """Rules that win over every grant."""
    agents: dict[AgentName, Agent] = Field(default_factory=dict)
    """The agents and their scopes."""
