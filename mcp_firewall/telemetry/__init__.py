"""Spans, metrics and audit records for every request (SPEC §7), on the OpenTelemetry API only.

    Recorder        the proxy's Observer: SERVER/CLIENT spans, duration histograms, decision counter, audit log
    Redactor        keeps secrets out of recorded arguments and reasons
    attributes      the attribute and metric names

Building providers and exporters (the OpenTelemetry SDK) is `mcp_firewall.telemetry_setup`'s job.
"""

from __future__ import annotations

from mcp_firewall.telemetry import attributes
from mcp_firewall.telemetry.recorder import Recorder
from mcp_firewall.telemetry.redact import REDACTED, Redactor

__all__ = ["REDACTED", "Recorder", "Redactor", "attributes"]
