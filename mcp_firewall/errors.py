"""One exception hierarchy for everything a user can act on.

    FirewallError
      ConfigError            a firewall or scope file is invalid (issues: tuple[ConfigIssue, ...])
      UnknownAgentError      the agent is not defined, has expired, or is not allowed in this environment
      UpstreamError          an upstream server failed a request
        UpstreamTimeout      ... did not answer within its timeout_s
        UpstreamUnavailable  ... is not running (failed to start, crashed, restarting)
      AuditWriteError        the audit log cannot be opened or a record cannot be written (the call is refused)
      KeyFileError           the API key file cannot be read or written, or is malformed
      CredentialError        an HTTP request's credential is missing, malformed, unknown, expired or revoked (401)

A policy denial is a `Decision`, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditWriteError",
    "ConfigError",
    "ConfigIssue",
    "CredentialError",
    "FirewallError",
    "KeyFileError",
    "UnknownAgentError",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem in a file a person wrote, rendered as `FILE:LINE:COL: code: message`."""

    file: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.code}: {self.message}"


class FirewallError(Exception):
    """Base of every error mcp-firewall raises on purpose."""


class ConfigError(FirewallError):
    """One or more files are invalid; `issues` holds every problem found, sorted by location."""

    def __init__(self, issues: list[ConfigIssue] | tuple[ConfigIssue, ...]) -> None:
        self.issues = tuple(sorted(issues))
        count = len(self.issues)
        lines = "\n".join(str(issue) for issue in self.issues)
        super().__init__(f"{count} issue{'s' if count != 1 else ''}:\n{lines}")


class UnknownAgentError(FirewallError):
    """The agent cannot be served: unknown, expired, or not allowed in this environment."""


class UpstreamError(FirewallError):
    """An upstream server could not answer a request."""

    def __init__(self, upstream: str, message: str) -> None:
        self.upstream = upstream
        self.detail = message
        super().__init__(f"upstream {upstream!r}: {message}")


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within its `timeout_s`."""


class UpstreamUnavailable(UpstreamError):
    """The upstream is not running: it failed to start or crashed, and is being restarted."""


class AuditWriteError(FirewallError):
    """The audit log cannot be opened, or a record cannot be written or synced: fail closed."""


class KeyFileError(FirewallError):
    """The API key file (`auth.keys`) cannot be read or written, or is not in the format `mcp-firewall keys` writes."""


class CredentialError(FirewallError):
    """An HTTP request's credential does not prove an agent. The message is for the firewall's own log only:
    the agent is told nothing but 401."""
