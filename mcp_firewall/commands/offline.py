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
  `inputSchema`, `outputSchema` and `annotations` (SPEC §6); see `tool_hash`.
* `version` is 1. Unknown keys are ignored, so later versions may record more (prompts, resources,
  when and from which server version the lock was taken).

An upstream of the firewall file that the lock does not mention counts as unknown (run
`mcp-firewall lock` again); an upstream the lock mentions that the firewall file does not is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mcp_firewall import __version__
from mcp_firewall.catalog import Catalog, UpstreamLists
from mcp_firewall.config.loader import LoadedConfig, display_path
from mcp_firewall.errors import ConfigError, ConfigIssue
from mcp_firewall.proxy.transports import UpstreamSpec
from mcp_firewall.proxy.upstream import Upstream

__all__ = [
    "ASKED",
    "ASK_TIMEOUT_S",
    "LOCK_FILE",
    "LOCK_VERSION",
    "Definitions",
    "ask_upstreams",
    "lock_document",
    "lock_path",
    "read_lock",
    "tool_definitions",
    "tool_hash",
]

LOCK_FILE = "tools.lock"
LOCK_VERSION = 1
ASK_TIMEOUT_S = 30.0
"""How long commands wait for all upstreams together to start and list their tools."""
ASKED = "the upstreams"
"""`Definitions.source` when the definitions were asked of the upstreams rather than read from a lock."""
HASHED_FIELDS = ("name", "description", "inputSchema", "outputSchema", "annotations")
CLIENT_INFO = {"name": "mcp-firewall", "version": __version__}


@dataclass(frozen=True)
class Definitions:
    """What the upstreams advertise, and which upstreams' tools are unknown (and why)."""

    lists: tuple[UpstreamLists, ...]
    unknown: Mapping[str, str] = field(default_factory=dict)
    """Upstream name → why its tools are unknown."""
    source: str = ""
    """Where the definitions came from, for messages: the lock file's path, or "the upstreams"."""

    def catalog(self) -> Catalog:
        return Catalog.build(self.lists)

    def unknown_upstream_of(self, exposed_name: str, prefixes: Mapping[str, bool]) -> str | None:
        """The unreachable upstream an unknown exposed tool name could belong to, if any."""
        for upstream in self.unknown:
            if not prefixes.get(upstream, True) or exposed_name.startswith(f"{upstream}__"):
                return upstream
        return None


def tool_hash(definition: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the fields of a tool definition that a lock pins."""
    pinned = {key: definition[key] for key in HASHED_FIELDS if key in definition}
    canonical = json.dumps(pinned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def lock_document(lists: Iterable[UpstreamLists]) -> dict[str, Any]:
    """The `tools.lock` content for these upstream lists (with hashes)."""
    upstreams: dict[str, Any] = {}
    for upstream in lists:
        tools = [dict(tool) for tool in upstream.tools]
        upstreams[upstream.name] = {
            "tools": tools,
            "hashes": {tool["name"]: tool_hash(tool) for tool in tools if isinstance(tool.get("name"), str)},
        }
    return {"version": LOCK_VERSION, "upstreams": upstreams}


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
    if not isinstance(document, dict) or not isinstance(document.get("upstreams"), dict):
        raise broken('expected an object with "upstreams": {NAME: {"tools": [...]}} (run `mcp-firewall lock`)')
    version = document.get("version", LOCK_VERSION)
    if version != LOCK_VERSION:
        raise broken(f"version {version!r} is not supported (this mcp-firewall reads version {LOCK_VERSION})")
    lists: list[UpstreamLists] = []
    unknown: dict[str, str] = {}
    for name, prefix in upstreams.items():
        entry = document["upstreams"].get(name)
        if entry is None:
            unknown[name] = f"{shown} has no entry for it (run `mcp-firewall lock`)"
            continue
        tools = entry.get("tools") if isinstance(entry, dict) else None
        if not isinstance(tools, list) or not all(_is_tool(tool) for tool in tools):
            raise broken(f'upstreams.{name}.tools: expected a list of tool definitions, each with a "name"')
        lists.append(UpstreamLists(name, prefix, tools=tuple(tools)))
    return Definitions(tuple(lists), unknown, shown)


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
    return Definitions(lists, unknown, ASKED)


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


def _is_tool(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str)


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
