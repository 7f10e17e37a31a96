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
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from mcp_firewall import __version__
from mcp_firewall.commands.common import UsageError, load_config
from mcp_firewall.commands.common import add_config_argument as _add_config
from mcp_firewall.config.loader import LoadedConfig, validate
from mcp_firewall.config.model import StdioUpstream
from mcp_firewall.errors import ConfigError, FirewallError
from mcp_firewall.proxy.transports import UpstreamSpec

if TYPE_CHECKING:
    from mcp_firewall.telemetry_setup import Observability

__all__ = ["main"]

logger = logging.getLogger("mcp_firewall")

USAGE_ERROR = 2

# Modules under mcp_firewall/commands/ that add subcommands (each has `register(commands)`).
COMMAND_MODULES: tuple[str, ...] = (
    "mcp_firewall.commands.audit",
    "mcp_firewall.commands.inspect",
    "mcp_firewall.commands.explain",
    "mcp_firewall.commands.policytest",
    "mcp_firewall.commands.diff",
    "mcp_firewall.commands.lint",
    "mcp_firewall.commands.lock",
    "mcp_firewall.commands.importer",
    "mcp_firewall.commands.report",
    "mcp_firewall.commands.keys",
)


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
    from mcp_firewall.lockfile import Pins
    from mcp_firewall.proxy.reload import PolicyHolder
    from mcp_firewall.proxy.stdio import serve_stdio

    config = load_config(args.config)
    transport = args.transport or config.firewall.listen.transport
    if transport != "stdio":
        return _run_http(args, config, transport)
    agent = args.agent or os.environ.get("MCP_FIREWALL_AGENT")
    if not agent:
        raise UsageError("name the agent this session serves: --agent NAME or MCP_FIREWALL_AGENT")
    policy = load_policy_of(config)
    if (refusal := policy.refusal(agent)) is not None:
        raise UsageError(f"refusing to start: {refusal}")
    holder = PolicyHolder(config.path, policy, list(config.firewall.scopes))
    pins = Pins.beside(config.path)  # tools.lock: tools whose definitions changed are quarantined
    specs = upstream_specs(config)
    observability = _start_observability(config)

    async def serve() -> None:
        await serve_stdio(
            agent=agent,
            specs=specs,
            gate=holder,
            max_message_bytes=config.firewall.limits.max_message_bytes,
            watch=holder.watch,
            on_policy_change=holder.listeners,
            pins=pins,
            observer=observability.observer if observability is not None else None,
            audit=observability.audit if observability is not None else None,
        )

    return _run_then_shut_down(serve, observability)


def _run_then_shut_down(serve: Callable[[], Awaitable[None]], observability: Observability | None) -> int:
    """Serve until stopped; then flush spans, metrics and the audit log, within their time budget."""
    try:
        anyio.run(serve)
    finally:
        if observability is not None:
            observability.shutdown()
    return 0


def _start_observability(config: LoadedConfig) -> Observability | None:
    """Spans, metrics and the audit log (SPEC §7); None, with nothing imported, when none is configured."""
    firewall = config.firewall
    if (
        firewall.audit is None
        and firewall.telemetry.exporter == "none"
        and not any(k.startswith("OTEL_") for k in os.environ)
    ):
        return None
    from mcp_firewall.telemetry_setup import start_observability

    transports = {name: upstream.kind for name, upstream in firewall.upstreams.items()}
    return start_observability(firewall.telemetry, firewall.audit, upstream_transports=transports)


def _run_http(args: argparse.Namespace, config: LoadedConfig, transport: str) -> int:
    """`run --transport http|sse`: agents are named by their credentials (SPEC §5), or all are `--agent`
    when there is no `auth` section and the address is loopback."""
    from mcp_firewall.commands.common import load_policy_of
    from mcp_firewall.lockfile import Pins
    from mcp_firewall.proxy.http import build_app, serve_http
    from mcp_firewall.proxy.reload import PolicyHolder

    policy = load_policy_of(config)
    holder = PolicyHolder(config.path, policy, list(config.firewall.scopes))
    observability = _start_observability(config)
    try:
        app = build_app(
            config,
            gate=holder,
            specs=upstream_specs(config),
            transport=transport,
            host=args.host or config.firewall.listen.host,
            port=args.port if args.port is not None else config.firewall.listen.port,
            agent=args.agent or os.environ.get("MCP_FIREWALL_AGENT"),
            explicit_agent=args.agent is not None,
            policy_listeners=holder.listeners,
            pins=Pins.beside(config.path),
            observer=observability.observer if observability is not None else None,
        )
    except ValueError as exc:
        if observability is not None:
            observability.shutdown()
        raise UsageError(str(exc)) from None

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder.watch)
            if observability is not None and observability.audit is not None:
                tg.start_soon(observability.audit.run_syncer)
            if observability is not None and observability.observer is not None:
                tg.start_soon(observability.observer.run)
            await serve_http(
                app, ready=lambda url: print(f"mcp-firewall: serving at {url}", file=sys.stderr, flush=True)
            )
            tg.cancel_scope.cancel()

    return _run_then_shut_down(serve, observability)


def _validate(args: argparse.Namespace) -> int:
    if not os.path.exists(args.config):
        raise UsageError(f"no firewall file at {args.config!r} (pass --config FILE or set MCP_FIREWALL_CONFIG)")
    issues = validate(args.config)
    for issue in issues:
        print(issue)
    return 1 if issues else 0
