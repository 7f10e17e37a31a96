"""The `mcp-firewall` command: the only place that configures logging and OpenTelemetry.

Exit codes: 0 success, 1 a negative answer (invalid, denied, changed, tampered), 2 a usage error.
In stdio mode nothing but MCP messages is ever written to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

import anyio

from mcp_firewall import __version__
from mcp_firewall.commands.common import UsageError, load_config
from mcp_firewall.commands.common import add_config_argument as _add_config
from mcp_firewall.config.loader import LoadedConfig, validate
from mcp_firewall.config.model import StdioUpstream
from mcp_firewall.errors import ConfigError, FirewallError
from mcp_firewall.proxy.transports import UpstreamSpec

__all__ = ["main"]

logger = logging.getLogger("mcp_firewall")

USAGE_ERROR = 2

# Modules under mcp_firewall/commands/ that add subcommands (each has `register(commands)`).
COMMAND_MODULES: tuple[str, ...] = ("mcp_firewall.commands.audit",)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        return int(args.command(args))
    except UsageError as exc:
        print(f"mcp-firewall: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except FirewallError as exc:
        print(f"mcp-firewall: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-firewall", description="An MCP tool-permission proxy for AI agents.")
    parser.add_argument("--version", action="version", version=f"mcp-firewall {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("MCP_FIREWALL_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
        help="diagnostics on stderr (default: warning, or MCP_FIREWALL_LOG_LEVEL)",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="serve agents (stdio by default)")
    _add_config(run)
    run.add_argument("--agent", help="the agent this stdio session serves (or MCP_FIREWALL_AGENT)")
    run.add_argument("--transport", choices=["stdio", "http", "sse"], help="overrides listen.transport")
    run.add_argument("--host", help="overrides listen.host")
    run.add_argument("--port", type=int, help="overrides listen.port")
    run.set_defaults(command=_run)

    check = commands.add_parser("validate", help="check the firewall file and every scope file")
    _add_config(check)
    check.set_defaults(command=_validate)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper()),
        format="mcp-firewall: %(levelname)s %(name)s: %(message)s",
    )


def upstream_specs(config: LoadedConfig) -> list[UpstreamSpec]:
    """Turn the firewall file's upstreams into connection specs (`${VAR}` already expanded by the loader)."""
    specs = []
    for name, upstream in config.firewall.upstreams.items():
        if isinstance(upstream, StdioUpstream):
            where = {
                "command": upstream.command,
                "args": tuple(upstream.args),
                "env": dict(upstream.env),
                "inherit_env": tuple(upstream.inherit_env),
                "cwd": upstream.cwd,
            }
        else:
            where = {"url": upstream.url, "headers": dict(upstream.headers)}
        specs.append(
            UpstreamSpec(
                name=name,
                kind=upstream.kind,
                timeout_s=upstream.timeout_s,
                prefix=upstream.prefix,
                shared=upstream.shared,
                **where,  # type: ignore[arg-type]
            )
        )
    return specs


def _run(args: argparse.Namespace) -> int:
    from mcp_firewall.commands.common import load_policy_of
    from mcp_firewall.proxy.reload import PolicyHolder
    from mcp_firewall.proxy.stdio import serve_stdio

    config = load_config(args.config)
    transport = args.transport or config.firewall.listen.transport
    if transport != "stdio":
        raise UsageError(f"--transport {transport} is not available yet; use stdio")
    agent = args.agent or os.environ.get("MCP_FIREWALL_AGENT")
    if not agent:
        raise UsageError("name the agent this session serves: --agent NAME or MCP_FIREWALL_AGENT")
    policy = load_policy_of(config)
    if (refusal := policy.refusal(agent)) is not None:
        raise UsageError(f"refusing to start: {refusal}")
    holder = PolicyHolder(config.path, policy, list(config.firewall.scopes))
    specs = upstream_specs(config)

    async def serve() -> None:
        await serve_stdio(
            agent=agent,
            specs=specs,
            gate=holder,
            max_message_bytes=config.firewall.limits.max_message_bytes,
            watch=holder.watch,
            on_policy_change=holder.listeners,
        )

    anyio.run(serve)
    return 0


def _validate(args: argparse.Namespace) -> int:
    if not os.path.exists(args.config):
        raise UsageError(f"no firewall file at {args.config!r} (pass --config FILE or set MCP_FIREWALL_CONFIG)")
    issues = validate(args.config)
    for issue in issues:
        print(issue)
    return 1 if issues else 0
