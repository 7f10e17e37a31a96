"""Small helpers for the recorder's spans: naming, error mapping, trace context from untrusted `_meta`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, Status, StatusCode

from mcp_firewall.telemetry import attributes as a

__all__ = ["MetaGetter", "add_target", "error_description", "finish", "is_code", "trace_id_of", "upstream_name"]


class MetaGetter(Getter[Mapping[str, Any]]):
    """Reads propagation fields from an agent's `_meta`, which is untrusted: only strings count."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)]


def add_target(attributes: dict[str, Any], method: str, target: str | None) -> None:
    if target is None:
        return
    if method == "tools/call":
        attributes[a.GEN_AI_TOOL_NAME] = target
        attributes[a.GEN_AI_OPERATION_NAME] = "execute_tool"
    elif method == "prompts/get":
        attributes[a.GEN_AI_PROMPT_NAME] = target
    elif method == "resources/read":
        attributes[a.MCP_RESOURCE_URI] = target


def upstream_name(target: str | None, upstream: str | None) -> str | None:
    """The name the upstream itself knows a tool or prompt by (without the `<upstream>__` prefix)."""
    if target is None or upstream is None:
        return target
    prefix = f"{upstream}__"
    return target[len(prefix) :] if target.startswith(prefix) else target


def finish(span: Span, error: str | None, description: str) -> None:
    if error is not None:
        span.set_attribute(a.ERROR_TYPE, error)
        if is_code(error):
            span.set_attribute(a.RPC_RESPONSE_STATUS_CODE, error)
        span.set_status(Status(StatusCode.ERROR, description))
    span.end()


def error_description(error: str | None) -> str:
    if error is None:
        return ""
    if is_code(error):
        return f"the upstream answered with JSON-RPC error {error}"
    return {
        "tool_error": "the tool's result is an error (isError)",
        "timeout": "the upstream did not answer in time",
        "upstream_unavailable": "the upstream is not available",
        "cancelled": "the agent cancelled the request",
    }.get(error, error)


def is_code(error: str) -> bool:
    return error.lstrip("-").isdigit()


def trace_id_of(meta: Mapping[str, Any] | None) -> str | None:
    """The trace id of the agent's `traceparent` (when spans are off, audit records still name the trace)."""
    if not meta:
        return None
    traceparent = meta.get("traceparent")
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    trace_id = parts[1].lower()
    if trace_id == "0" * 32 or any(c not in "0123456789abcdef" for c in trace_id):
        return None
    return trace_id
