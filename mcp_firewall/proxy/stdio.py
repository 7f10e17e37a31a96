"""Serve one agent over stdio: MCP messages on stdin/stdout, diagnostics on stderr, nothing else."""

from __future__ import annotations

import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from mcp_firewall.policy.view import Gate
from mcp_firewall.proxy.framing import FdWriter, fd_chunks, split_lines
from mcp_firewall.proxy.transports import UpstreamSpec
from mcp_firewall.proxy.upstream import Upstream

if TYPE_CHECKING:
    from mcp_firewall.audit import AuditLog
    from mcp_firewall.lockfile import Pins
    from mcp_firewall.proxy.observe import Observer

__all__ = ["serve_stdio"]


async def serve_stdio(
    *,
    agent: str,
    specs: Sequence[UpstreamSpec],
    gate: Callable[[], Gate],
    max_message_bytes: int,
    environ: Mapping[str, str] | None = None,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    watch: Callable[[], Coroutine[Any, Any, None]] | None = None,
    on_policy_change: list[Callable[[], None]] | None = None,
    pins: Pins | None = None,
    observer: Observer | None = None,
    audit: AuditLog | None = None,
) -> None:
    """Run until the agent closes stdin or the process is asked to stop; every child is reaped."""
    upstreams = [Upstream(spec, environ=environ) for spec in specs]
    writer = FdWriter(stdout_fd)
    session: Any = None
    try:
        async with anyio.create_task_group() as tg:
            for upstream in upstreams:
                tg.start_soon(upstream.run)
            await anyio.sleep(0.001)  # let the upstream processes spawn before the heavier imports below
            from mcp_firewall.proxy.session import AgentSession

            session = AgentSession(
                agent=agent,
                gate=gate,
                upstreams=upstreams,
                write=writer.send,
                max_message_bytes=max_message_bytes,
                pins=pins,
                observer=observer,
            )
            if audit is not None:  # fsync: batch syncs in the background; cancelling it syncs once more
                tg.start_soon(audit.run_syncer)
            if observer is not None:
                tg.start_soon(observer.run)
            if on_policy_change is not None:
                on_policy_change.append(session.refresh_view)
            if pins is not None:  # a re-lock releases reviewed tools without a restart
                pins.listeners.append(session.refresh_view)
                tg.start_soon(pins.watch)
            if watch is not None:
                tg.start_soon(watch)
            tg.start_soon(_cancel_on_signal, tg.cancel_scope)
            await session.serve(split_lines(fd_chunks(stdin_fd), max_message_bytes))
            for upstream in upstreams:
                upstream.stop()
            tg.cancel_scope.cancel()
    finally:
        if session is not None:
            session.close()
        writer.restore_blocking()


async def _cancel_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for _ in signals:
            scope.cancel()
            return
