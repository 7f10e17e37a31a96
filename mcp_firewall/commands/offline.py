"""Upstream tool definitions for commands that decide without serving agents (`check`, `tools`, ...).

With a `tools.lock` beside the firewall file, the definitions come from it and no upstream is started.
Without one, each upstream is started (or connected to) once, asked for its lists, and stopped. An
upstream that cannot be reached is reported, and its tools count as unknown: commands say so rather
than guess.

The `tools.lock` format
-----------------------
JSON (UTF-8), one object::

    {
      "version": 1,
      "upstreams": {
        "files": {
          "tools": [ {"name": "read_text_file", "inputSchema": {...}, ...}, ... ],
          "hashes": {"read_text_file": "9f2c...", ...}
        }
      }
    }

* `upstreams` maps each upstream's name (as in the firewall file) to what it advertised.
* `tools` is the upstream's `tools/list` result, every page, each tool exactly as the upstream sent it
  (its own name, not the `<upstream>__` name agents see). This is all that readers need.
* `hashes` (optional here; `mcp-firewall lock` writes it) maps a tool's name to the hex SHA-256 of
  the canonical JSON (sorted keys, no insignificant whitespace, UTF-8) of its `name`, `description`,
  `inputSchema`, `outputSchema` and `annotations` (SPEC §6); see `tool_hash`. A reader checks each hash
  against its definition. `mcp_firewall.lockfile` owns the format (and `mcp-firewall lock` writes it:
  also `server_info`, `prompts`, `resources` and `resource_templates`).
* `version` is 1. Unknown keys are ignored, so later versions may record more (prompts, resources,
  when and from which server version the lock was taken).

An upstream of the firewall file that the lock does not mention counts as unknown (run
`mcp-firewall lock` again); an upstream the lock mentions that the firewall file does not is ignored.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mcp_firewall import __version__
from mcp_firewall.catalog import Catalog, UpstreamLists
from mcp_firewall.commands.common import UsageError
from mcp_firewall.config.loader import LoadedConfig, display_path
from mcp_firewall.errors import ConfigError, ConfigIssue
from mcp_firewall.lockfile import LockedUpstream, LockFileError, ToolLock, lock_from_json, tool_hash
from mcp_firewall.proxy.transports import UpstreamSpec
from mcp_firewall.proxy.upstream import Upstream

__all__ = [
    "ASKED",
    "ASK_TIMEOUT_S",
    "LOCK_FILE",
    "LOCK_VERSION",
    "Definitions",
    "ask_upstreams",
    "catalog_for",
    "lock_document",
    "lock_path",
    "parse_arguments",
    "read_lock",
    "report_unknown",
    "tool_definitions",
    "tool_hash",
]

LOCK_FILE = "tools.lock"
LOCK_VERSION = 1
ASK_TIMEOUT_S = 30.0
"""How long commands wait for all upstreams together to start and list their tools."""
ASKED = "the upstreams"
"""`Definitions.source` when the definitions were asked of the upstreams rather than read from a lock."""
CLIENT_INFO = {"name": "mcp-firewall", "version": __version__}


@dataclass(frozen=True)
class Definitions:
    """What the upstreams advertise, and which upstreams' tools are unknown (and why)."""

    lists: tuple[UpstreamLists, ...]
    unknown: Mapping[str, str] = field(default_factory=dict)
    """Upstream name → why its tools are unknown."""
    source: str = ""
    """Where the definitions came from, for messages: the lock file's path, or "the upstreams"."""
    server_info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Upstream name → the `serverInfo` it gave (from the lock: when it was locked)."""

    def catalog(self) -> Catalog:
        return Catalog.build(self.lists)

    def unknown_upstream_of(self, exposed_name: str, prefixes: Mapping[str, bool]) -> str | None:
        """The unreachable upstream an unknown exposed tool name could belong to, if any."""
        for upstream in self.unknown:
            if not prefixes.get(upstream, True) or exposed_name.startswith(f"{upstream}__"):
                return upstream
        return None


def lock_document(lists: Iterable[UpstreamLists]) -> dict[str, Any]:
    """The `tools.lock` content for these upstream lists (the format is `mcp_firewall.lockfile`'s)."""
    return ToolLock(
        {up.name: LockedUpstream.of(up.tools, None, up.prompts, up.resources, up.templates) for up in lists}
    ).to_json()


def lock_path(config: LoadedConfig) -> Path:
    """Where the lock of this configuration lives: beside the firewall file."""
    return config.path.parent / LOCK_FILE


def read_lock(path: Path, upstreams: Mapping[str, bool]) -> Definitions:
    """Read a lock for the firewall file's upstreams (name → prefix). Raises ConfigError when malformed."""
    shown = display_path(path)

    def broken(message: str, line: int = 1, column: int = 1) -> ConfigError:
        return ConfigError([ConfigIssue(shown, line, column, "lock", message)])

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise broken(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise broken(f"cannot be read: {exc}") from None
    try:
        lock = lock_from_json(document, path)  # checks shape, version and every hash (mcp_firewall.lockfile)
    except LockFileError as exc:
        raise broken(str(exc).removeprefix(f"{path}: ")) from None
    lists: list[UpstreamLists] = []
    unknown: dict[str, str] = {}
    for name, prefix in upstreams.items():
        entry = lock.upstreams.get(name)
        if entry is None:
            unknown[name] = f"{shown} has no entry for it (run `mcp-firewall lock`)"
            continue
        lists.append(entry.lists(name, prefix))
    server_info = {name: entry.server_info for name, entry in lock.upstreams.items() if name in upstreams}
    return Definitions(tuple(lists), unknown, shown, server_info)


async def ask_upstreams(
    specs: Iterable[UpstreamSpec],
    *,
    timeout_s: float = ASK_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
    open_transport_fn: Callable[[UpstreamSpec], Any] | None = None,
) -> Definitions:
    """Start every upstream at once, wait (at most `timeout_s` in all) for its lists, then stop them all."""
    upstreams = [Upstream(spec, environ=environ, open_transport_fn=open_transport_fn) for spec in specs]
    with _quiet_restarts():
        async with anyio.create_task_group() as tg:
            for upstream in upstreams:
                upstream.introduce_client({}, CLIENT_INFO)
                tg.start_soon(upstream.run)
            with anyio.move_on_after(timeout_s):
                for upstream in upstreams:
                    await upstream.settled.wait()
            for upstream in upstreams:
                upstream.stop()
            tg.cancel_scope.cancel()
    lists = tuple(upstream.lists for upstream in upstreams if upstream.state == "ready")
    unknown = {
        upstream.name: _why_unreachable(upstream, timeout_s) for upstream in upstreams if upstream.state != "ready"
    }
    server_info = {upstream.name: dict(upstream.server_info) for upstream in upstreams if upstream.state == "ready"}
    return Definitions(lists, unknown, ASKED, server_info)


def tool_definitions(config: LoadedConfig, *, timeout_s: float = ASK_TIMEOUT_S) -> Definitions:
    """From `tools.lock` beside the firewall file if there is one, else from the upstreams themselves."""
    from mcp_firewall.cli import upstream_specs

    prefixes = {name: upstream.prefix for name, upstream in config.firewall.upstreams.items()}
    path = lock_path(config)
    if path.exists():
        return read_lock(path, prefixes)
    specs = upstream_specs(config)

    async def ask() -> Definitions:
        return await ask_upstreams(specs, timeout_s=timeout_s)

    return anyio.run(ask)


def parse_arguments(text: str) -> dict[str, Any]:
    """`--args` as the firewall would read it: a JSON object, no duplicate keys, no NaN/Infinity."""

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise UsageError(f"--args has the key {key!r} twice; the firewall refuses duplicate keys")
            result[key] = value
        return result

    def refuse_constant(name: str) -> Any:
        raise UsageError(f"--args is not valid JSON: {name} is not a JSON number")

    try:
        value = json.loads(text, object_pairs_hook=refuse_duplicates, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--args is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"{type(value).__name__.replace('NoneType', 'null')}"
        raise UsageError(f'--args must be a JSON object such as \'{{"path": "/srv/docs/a.md"}}\', not {kind}')
    return value


def catalog_for(config: LoadedConfig, *, timeout_s: float = ASK_TIMEOUT_S) -> Catalog:
    """The catalog commands decide against; unreachable upstreams are reported on stderr (see `tool_definitions`)."""
    definitions = tool_definitions(config, timeout_s=timeout_s)
    report_unknown(definitions)
    return definitions.catalog()


def report_unknown(definitions: Definitions) -> None:
    """Say on stderr, once per upstream, which upstreams' tools are unknown and why."""
    for upstream, why in sorted(definitions.unknown.items()):
        message = f"upstream {upstream!r} could not be reached, so its tools are unknown: {why}"
        print(f"mcp-firewall: {message}", file=sys.stderr)


def _why_unreachable(upstream: Upstream, timeout_s: float) -> str:
    reason = upstream.last_error or f"it did not list its tools within {timeout_s:g} s"
    prefix = f"upstream {upstream.name!r}"
    return reason[len(prefix) :].lstrip(": ") if reason.startswith(prefix) else reason


@contextmanager
def _quiet_restarts() -> Iterator[None]:
    """Commands report an unreachable upstream once, themselves; the supervisor's retry warnings are noise."""
    logger = logging.getLogger("mcp_firewall.proxy.upstream")
    level = logger.level
    if logger.getEffectiveLevel() >= logging.WARNING:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
