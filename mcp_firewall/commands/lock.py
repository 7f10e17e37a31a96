"""`mcp-firewall lock`: record every upstream tool's definition and hash in `tools.lock` (docs/pinning.md).

The upstreams are started (or connected to) once, asked for their lists, and stopped. What changed
since the previous lock is printed before it is replaced, so that the operator sees what they accept.
An upstream that cannot be reached keeps its previous entry, and the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from mcp_firewall.catalog import UpstreamLists
from mcp_firewall.commands.common import UsageError, add_config_argument, load_config
from mcp_firewall.commands.offline import Definitions, ask_upstreams
from mcp_firewall.lockfile import LockedUpstream, LockFileError, ToolChange, ToolLock, compare_tools, lock_path
from mcp_firewall.lockfile import read_lock as read_lock_file
from mcp_firewall.lockfile import write_lock as write_lock_file

__all__ = ["register"]


def register(commands: Any) -> None:
    lock = commands.add_parser("lock", help="record every upstream tool's definition and hash in tools.lock")
    add_config_argument(lock)
    lock.add_argument(
        "--upstream",
        action="append",
        metavar="NAME",
        help="lock only this upstream (repeatable); the others keep their entries",
    )
    lock.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any upstream no longer matches the lock"
    )
    lock.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the upstreams to list their tools (30)"
    )
    lock.set_defaults(command=_lock)


def _lock(args: argparse.Namespace) -> int:
    from mcp_firewall.cli import upstream_specs

    config = load_config(args.config)
    configured = list(config.firewall.upstreams)
    names = args.upstream or configured
    if unknown := [name for name in names if name not in configured]:
        raise UsageError(f"--upstream {unknown[0]!r} is not an upstream of {args.config} ({', '.join(configured)})")
    path = lock_path(config.path)
    previous = _previous_lock(path, strict=args.check)
    specs = [spec for spec in upstream_specs(config) if spec.name in names]

    async def ask() -> Definitions:
        return await ask_upstreams(specs, timeout_s=args.timeout)

    definitions = anyio.run(ask)
    fresh = {lists.name: _locked(lists, definitions) for lists in definitions.lists}
    changed = False
    for name in names:
        if name in definitions.unknown:
            print(f"{name}: could not be reached, its entry is kept: {definitions.unknown[name]}", file=sys.stderr)
            continue
        changed |= _report(name, previous.upstreams.get(name) if previous else None, fresh[name])
    if args.check:
        return 1 if changed or definitions.unknown else 0
    kept = {name: up for name, up in (previous.upstreams.items() if previous else ()) if name in configured}
    lock = ToolLock({**kept, **fresh}, path)
    write_lock_file(lock, path)
    tools = sum(len(up.tools) for up in lock.upstreams.values())
    print(f"wrote {path} ({tools} tools of {len(lock.upstreams)} upstreams)")
    return 1 if definitions.unknown else 0


def _previous_lock(path: Path, *, strict: bool) -> ToolLock | None:
    if not path.exists():
        return None
    try:
        return read_lock_file(path)
    except LockFileError as exc:
        if strict:
            raise
        print(f"mcp-firewall: {exc}; it is replaced", file=sys.stderr)
        return None


def _locked(lists: UpstreamLists, definitions: Definitions) -> LockedUpstream:
    server_info = definitions.server_info.get(lists.name, {})
    return LockedUpstream.of(lists.tools, server_info, lists.prompts, lists.resources, lists.templates)


def _report(name: str, old: LockedUpstream | None, new: LockedUpstream) -> bool:
    """Print what changed for one upstream since its previous lock; True when anything did."""
    server = _server(new.server_info)
    count = f"{len(new.tools)} tool{'s' if len(new.tools) != 1 else ''}{server}"
    if old is None:
        print(f"{name}: {count}, not locked before")
        return True
    changes = compare_tools(name, old, list(new.definitions()))
    version_line = _version_change(old.server_info, new.server_info)
    if not changes:
        print(f"{name}: {count}, unchanged{version_line and '; ' + version_line}")
        return False
    print(f"{name}: {count}, {_summary(changes)}{version_line and '; ' + version_line}:")
    for change in changes:
        for line in change.describe().splitlines():
            print(f"  {line}")
    return True


def _summary(changes: list[ToolChange]) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def _server(info: Mapping[str, Any]) -> str:
    name, version = info.get("name"), info.get("version")
    if not isinstance(name, str):
        return ""
    return f" ({name} {version})" if isinstance(version, str) else f" ({name})"


def _version_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    before, after = old.get("version"), new.get("version")
    if before is None or after is None or before == after:
        return ""
    return f"server version {before} → {after}"
