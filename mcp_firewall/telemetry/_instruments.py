"""The recorder's metrics: the MCP conventions' duration histograms and the firewall's decision counter."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from mcp_firewall.policy.decision import Decision
from mcp_firewall.proxy.observe import RequestInfo
from mcp_firewall.telemetry import attributes as a
from mcp_firewall.telemetry._spans import is_code

__all__ = ["Instruments"]

_NAMED: Final = {"tools/call": a.GEN_AI_TOOL_NAME, "prompts/get": a.GEN_AI_PROMPT_NAME}
_NOT_COUNTED_BY: Final = frozenset({a.NETWORK_TRANSPORT, a.MCP_PROTOCOL_VERSION, a.GEN_AI_OPERATION_NAME})


class Instruments:
    """Histograms in seconds with the conventions' bucket boundaries; a counter of decisions."""

    def __init__(self, meter: Meter) -> None:
        buckets = list(a.DURATION_BUCKETS)
        self.server_duration = meter.create_histogram(
            a.MCP_SERVER_OPERATION_DURATION,
            unit="s",
            description="MCP request duration as observed by the firewall, from decision to answer.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self.client_duration = meter.create_histogram(
            a.MCP_CLIENT_OPERATION_DURATION,
            unit="s",
            description="Duration of a request the firewall forwarded, until the upstream's answer.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        self.session_duration = meter.create_histogram(
            a.MCP_SERVER_SESSION_DURATION,
            unit="s",
            description="Duration of an agent's session with the firewall.",
            explicit_bucket_boundaries_advisory=buckets,
        )
        # Counted in a plain dict on the hot path (a dictionary increment, not an SDK call per decision) and
        # reported as a cumulative observable counter whenever the metrics are collected.
        self._decisions: dict[tuple[tuple[str, str], ...], int] = {}
        self._pending: deque[tuple[Mapping[str, str], str | None, float, float | None, str | None]] = deque()
        self.decisions = meter.create_observable_counter(
            a.DECISIONS_METRIC,
            callbacks=[self._observe_decisions],
            unit="{decision}",
            description="Policy decisions by agent, upstream, tool, outcome.",
        )

    @staticmethod
    def attributes_of(info: RequestInfo) -> dict[str, str]:
        """The low-cardinality attributes of one request, shared by its measurements."""
        attributes = {a.MCP_METHOD_NAME: info.method, a.NETWORK_TRANSPORT: info.transport}
        if info.protocol_version:
            attributes[a.MCP_PROTOCOL_VERSION] = info.protocol_version
        if info.upstream is not None and info.method in _NAMED and info.target:
            # only names an upstream offers: an agent's made-up names would grow the series without bound
            attributes[_NAMED[info.method]] = info.target
        if info.method == "tools/call":
            attributes[a.GEN_AI_OPERATION_NAME] = "execute_tool"
        return attributes

    def count_decision(self, base: Mapping[str, str], info: RequestInfo, decision: Decision) -> None:
        attributes = {key: value for key, value in base.items() if key not in _NOT_COUNTED_BY}
        attributes[a.AGENT] = info.agent
        attributes[a.DECISION] = decision.outcome
        if info.upstream is not None:
            attributes[a.UPSTREAM] = info.upstream
        key = tuple(sorted(attributes.items()))
        self._decisions[key] = self._decisions.get(key, 0) + 1

    def _observe_decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        self.flush()  # runs before the reader collects the histograms: they include every queued request
        return [Observation(count, dict(key)) for key, count in list(self._decisions.items())]

    def record(
        self, base: Mapping[str, str], upstream: str | None, server_s: float, client_s: float | None, error: str | None
    ) -> None:
        """Queue one request's durations; `flush` hands them to the SDK off the request path.

        The SDK spends ~20 µs per `Histogram.record` (attribute hashing, view matching): done per request
        that is a tenth of the firewall's added latency. The queue is a deque (appends and pops are
        atomic), flushed by the event loop every 100 ms and by the metric reader before each collection.
        """
        self._pending.append((base, upstream, server_s, client_s, error))

    def flush(self) -> None:
        pending = self._pending
        while pending:
            try:
                base, upstream, server_s, client_s, error = pending.popleft()
            except IndexError:  # the other thread took the last one
                return
            self._record(base, upstream, server_s, client_s, error)

    def _record(
        self, base: Mapping[str, str], upstream: str | None, server_s: float, client_s: float | None, error: str | None
    ) -> None:
        attributes = dict(base)
        if error is not None:
            attributes[a.ERROR_TYPE] = error
            if is_code(error):
                attributes[a.RPC_RESPONSE_STATUS_CODE] = error
        self.server_duration.record(max(server_s, 0.0), attributes)
        if client_s is not None:
            if upstream is not None:
                attributes[a.UPSTREAM] = upstream
            self.client_duration.record(max(client_s, 0.0), attributes)
