"""Hot reload of scope files: compile off the event loop, swap the policy in one assignment.

The watcher polls the scope files' modification times every 200 ms. A file that fails validation
leaves the last good policy in force and is reported on stderr; a good one replaces the policy for
the next request (a request already being decided keeps the policy it started with).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from mcp_firewall.config.loader import find_scope_files, load_firewall_file
from mcp_firewall.errors import ConfigError
from mcp_firewall.policy.compile import Policy, compile_policy

__all__ = ["PolicyHolder", "load_policy"]

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.2


def load_policy(config_path: Path) -> Policy:
    """Load and compile the policy that `config_path`'s scope files define (raises `ConfigError`)."""
    config = load_firewall_file(config_path)
    return compile_policy(config.policy, upstreams=config.firewall.upstreams, environment=config.firewall.environment)


class PolicyHolder:
    """The current policy; `current` is swapped atomically on reload and `on_change` callbacks run."""

    def __init__(self, config_path: Path, policy: Policy, scope_paths: list[str]) -> None:
        self.current = policy
        self._config_path = config_path
        self._scope_paths = scope_paths
        self._stamps = self._read_stamps()
        self.listeners: list[Callable[[], None]] = []

    def __call__(self) -> Policy:
        return self.current

    def _read_stamps(self) -> dict[str, float]:
        stamps: dict[str, float] = {}
        for entry in self._scope_paths:
            try:
                stamps[entry] = os.stat(entry).st_mtime
            except OSError:
                stamps[entry] = -1.0
        for file in find_scope_files(self._scope_paths):
            try:
                stamps[str(file)] = file.stat().st_mtime
            except OSError:
                stamps[str(file)] = -1.0
        return stamps

    async def watch(self) -> None:
        while True:
            await anyio.sleep(POLL_SECONDS)
            stamps = self._read_stamps()
            if stamps != self._stamps:
                self._stamps = stamps
                await self.reload()

    async def reload(self) -> bool:
        try:
            policy = await anyio.to_thread.run_sync(load_policy, self._config_path)
        except ConfigError as exc:
            logger.error("scope files changed but are invalid; the last good policy stays in force.\n%s", exc)
            return False
        self.current = policy
        logger.warning("policy reloaded from %d scope file(s)", len(self._stamps))
        for listener in self.listeners:
            listener()
        return True
