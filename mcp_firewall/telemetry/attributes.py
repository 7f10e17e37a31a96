"""Attribute, metric and span-kind names: the OpenTelemetry MCP conventions plus the firewall's own (SPEC §7).

No key here is both a leaf and the prefix of another key (`a.b` and `a.b.c`): Phoenix stores dotted
keys as nested objects, and such a pair would collide. `tests/test_telemetry.py` checks it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENT",
    "ARGUMENT",
    "ARGUMENTS",
    "AUDIT_HASH",
    "CONSTRAINT",
    "DECISION",
    "DECISIONS_METRIC",
    "DURATION_BUCKETS",
    "ERROR_TYPE",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROMPT_NAME",
    "GEN_AI_TOOL_NAME",
    "JSONRPC_REQUEST_ID",
    "MCP_CLIENT_OPERATION_DURATION",
    "MCP_METHOD_NAME",
    "MCP_PROTOCOL_VERSION",
    "MCP_RESOURCE_URI",
    "MCP_SERVER_OPERATION_DURATION",
    "MCP_SERVER_SESSION_DURATION",
    "MCP_SESSION_ID",
    "NETWORK_TRANSPORT",
    "OPENINFERENCE_SESSION_ID",
    "OPENINFERENCE_SPAN_KIND",
    "QUARANTINED_EVENT",
    "REASON",
    "RPC_RESPONSE_STATUS_CODE",
    "RULE",
    "SCOPE",
    "SPAN_KIND_AGENT",
    "SPAN_KIND_CHAIN",
    "SPAN_KIND_TOOL",
    "TRACER_NAME",
    "UPSTREAM",
]

TRACER_NAME: Final = "mcp_firewall"

# -- OpenTelemetry semantic conventions (MCP, GenAI, RPC, network, error) ----------------------------
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_SESSION_ID: Final = "mcp.session.id"
MCP_PROTOCOL_VERSION: Final = "mcp.protocol.version"
MCP_RESOURCE_URI: Final = "mcp.resource.uri"
JSONRPC_REQUEST_ID: Final = "jsonrpc.request.id"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
NETWORK_TRANSPORT: Final = "network.transport"
ERROR_TYPE: Final = "error.type"
RPC_RESPONSE_STATUS_CODE: Final = "rpc.response.status_code"

# -- OpenInference (Arize Phoenix): the span kind sets the icon and the kind column ----------------
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OPENINFERENCE_SESSION_ID: Final = "session.id"  # groups a session's traces in Phoenix's Sessions view
SPAN_KIND_AGENT: Final = "AGENT"
SPAN_KIND_TOOL: Final = "TOOL"
SPAN_KIND_CHAIN: Final = "CHAIN"

# -- the firewall's own ----------------------------------------------------------------------------
AGENT: Final = "mcp_firewall.agent"
DECISION: Final = "mcp_firewall.decision"
REASON: Final = "mcp_firewall.reason"
SCOPE: Final = "mcp_firewall.scope"
UPSTREAM: Final = "mcp_firewall.upstream"
AUDIT_HASH: Final = "mcp_firewall.audit.hash"
RULE: Final = "mcp_firewall.rule"
ARGUMENT: Final = "mcp_firewall.argument"
CONSTRAINT: Final = "mcp_firewall.constraint"
ARGUMENTS: Final = "mcp_firewall.arguments"
QUARANTINED_EVENT: Final = "mcp_firewall.quarantined"  # a span event, not an attribute

# -- metrics ---------------------------------------------------------------------------------------
MCP_SERVER_OPERATION_DURATION: Final = "mcp.server.operation.duration"
MCP_CLIENT_OPERATION_DURATION: Final = "mcp.client.operation.duration"
MCP_SERVER_SESSION_DURATION: Final = "mcp.server.session.duration"
DECISIONS_METRIC: Final = "mcp_firewall.decisions"
DURATION_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
