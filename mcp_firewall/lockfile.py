"""`tools.lock`: every upstream tool's definition, pinned by a hash (SPEC §6; docs/pinning.md).

The file sits beside the firewall file. It is JSON with sorted keys and two-space indentation, so
that a re-lock reviews as a small diff:

    {
      "upstreams": {
        "time": {
          "hashes": {"get_current_time": "<hex SHA-256>", ...},
          "server_info": {"name": "mcp-time", "version": "1.9.4"},
          "tools": [{"name": "get_current_time", "description": ..., "inputSchema": ...}, ...],
          "prompts": [...], "resources": [...], "resource_templates": [...]
        }
      },
      "version": 1
    }

`tools` is the upstream's `tools/list` result (every page), each tool exactly as it was listed, under
its own name. `hashes` maps each tool's name to the hex SHA-256 of the canonical JSON (sorted keys,
separators `,` and `:`, UTF-8, no ASCII escaping) of the object made of those of the tool's `name`,
`description`, `inputSchema`, `outputSchema` and `annotations` that it has; keys outside those five
(`title`, `icons`, `_meta`) are recorded but not pinned. A reader checks every hash it is given
against its definition (a hand-edited definition is refused) and computes the ones it is not.
Prompts, resources and templates are recorded for the offline commands, not pinned. Unknown keys are
ignored, so later versions can record more.

`compare_tools` tells how an upstream's live tools differ from its lock entry (changed, added,
removed, and renamed where a removed and an added tool match); `Pins` is the lock as `run` applies it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import anyio.to_thread

from mcp_firewall.catalog import UpstreamLists
from mcp_firewall.errors import FirewallError

__all__ = [
    "LOCK_FILE_NAME",
    "LOCK_VERSION",
    "PINNED_KEYS",
    "ChangeKind",
    "LockFileError",
    "LockedTool",
    "LockedUpstream",
    "Pins",
    "ToolChange",
    "ToolLock",
    "canonical_json",
    "compare_tools",
    "diff_definitions",
    "load_lock",
    "lock_from_json",
    "lock_path",
    "pinned",
    "read_lock",
    "tool_hash",
    "write_lock",
]

logger = logging.getLogger(__name__)

LOCK_FILE_NAME: Final = "tools.lock"
LOCK_VERSION: Final = 1
PINNED_KEYS: Final = ("name", "description", "inputSchema", "outputSchema", "annotations")
RENAME_SIMILARITY: Final = 0.75  # how alike (0..1) a removed and an added tool must be to count as a rename
POLL_SECONDS: Final = 0.5
_VALUE_LIMIT: Final = 400  # characters of one JSON value in a diff line
_SHORT_TEXT: Final = 60  # longer strings (or several lines) are compared line by line
_ABSENT: Final = object()
# Control characters and bidi overrides could hide or forge lines of a report shown in a terminal.
_UNSAFE = [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = str.maketrans({code: f"\\u{code:04x}" for code in _UNSAFE})

ChangeKind = Literal["changed", "added", "removed", "renamed"]


class LockFileError(FirewallError):
    """tools.lock cannot be read, or does not hold what `mcp-firewall lock` writes."""


# -- hashing -------------------------------------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """Sorted keys, separators `,` and `:`, UTF-8, no ASCII escaping (the audit log's rule too)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def pinned(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a tool definition that its hash covers."""
    return {key: definition[key] for key in PINNED_KEYS if key in definition}


def tool_hash(definition: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the pinned part of `definition`."""
    return hashlib.sha256(canonical_json(pinned(definition))).hexdigest()


# -- the file ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockedTool:
    name: str
    hash: str
    definition: Mapping[str, Any]


@dataclass(frozen=True)
class LockedUpstream:
    """One upstream as it was when locked."""

    tools: Mapping[str, LockedTool]  # by the upstream's own tool name, in the order it listed them
    server_info: Mapping[str, Any] = field(default_factory=dict)
    prompts: tuple[Mapping[str, Any], ...] = ()
    resources: tuple[Mapping[str, Any], ...] = ()
    templates: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(
        cls,
        tools: Iterable[Mapping[str, Any]],
        server_info: Mapping[str, Any] | None = None,
        prompts: Iterable[Mapping[str, Any]] = (),
        resources: Iterable[Mapping[str, Any]] = (),
        templates: Iterable[Mapping[str, Any]] = (),
    ) -> LockedUpstream:
        """Lock what an upstream lists now (tools without a string name are left out)."""
        locked = {
            tool["name"]: LockedTool(tool["name"], tool_hash(tool), dict(tool))
            for tool in tools
            if isinstance(tool.get("name"), str)
        }
        return cls(locked, dict(server_info or {}), tuple(prompts), tuple(resources), tuple(templates))

    def definitions(self) -> list[Mapping[str, Any]]:
        """The locked tool definitions, in the order the upstream listed them."""
        return [tool.definition for tool in self.tools.values()]

    def lists(self, name: str, prefix: bool = True) -> UpstreamLists:
        """The lists the upstream had when locked, as the catalog takes them (offline commands)."""
        return UpstreamLists(
            name,
            prefix,
            tools=[dict(tool.definition) for tool in self.tools.values()],
            prompts=[dict(p) for p in self.prompts],
            resources=[dict(r) for r in self.resources],
            templates=[dict(t) for t in self.templates],
        )

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "server_info": dict(self.server_info),
            "tools": [dict(tool.definition) for tool in self.tools.values()],
            "hashes": {tool.name: tool.hash for tool in self.tools.values()},
        }
        for key, items in (("prompts", self.prompts), ("resources", self.resources)):
            if items:
                entry[key] = [dict(item) for item in items]
        if self.templates:
            entry["resource_templates"] = [dict(item) for item in self.templates]
        return entry


@dataclass(frozen=True)
class ToolLock:
    """The whole lock file: every upstream's locked tools, by upstream name."""

    upstreams: Mapping[str, LockedUpstream]
    path: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": LOCK_VERSION,
            "upstreams": {name: up.to_json() for name, up in sorted(self.upstreams.items())},
        }

    def lists(self, prefixes: Mapping[str, bool]) -> list[UpstreamLists]:
        """The locked lists of the upstreams named in `prefixes` (name → its `prefix` setting)."""
        return [up.lists(name, prefixes[name]) for name, up in self.upstreams.items() if name in prefixes]


def lock_path(config_path: str | os.PathLike[str]) -> Path:
    """Where the lock of a firewall file lives: `tools.lock` beside it."""
    return Path(os.path.abspath(config_path)).parent / LOCK_FILE_NAME


def load_lock(config_path: str | os.PathLike[str]) -> ToolLock | None:
    """The lock beside a firewall file, or None when there is none (raises `LockFileError` if unreadable)."""
    path = lock_path(config_path)
    return read_lock(path) if path.exists() else None


def read_lock(path: str | os.PathLike[str]) -> ToolLock:
    """Read and check a lock file: shape, version, and that every hash matches its definition."""
    file = Path(path)
    try:
        data = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise LockFileError(f"{file}: cannot be read as JSON ({exc})") from None
    return lock_from_json(data, file)


def lock_from_json(data: Any, file: Path) -> ToolLock:
    """Check a parsed lock document (`file` names it in errors); a missing `version` is taken as 1."""
    if not isinstance(data, dict) or not isinstance(data.get("upstreams"), dict):
        raise LockFileError(f"{file}: not a tools.lock (expected an object with `version` and `upstreams`)")
    if data.get("version", LOCK_VERSION) != LOCK_VERSION:
        raise LockFileError(
            f"{file}: version {data.get('version')!r} is not supported (this mcp-firewall reads version "
            f"{LOCK_VERSION}); run `mcp-firewall lock` to rewrite it"
        )
    upstreams = {name: _read_upstream(file, name, entry) for name, entry in data["upstreams"].items()}
    return ToolLock(upstreams, file)


def _read_upstream(file: Path, name: str, entry: Any) -> LockedUpstream:
    where = f"{file}: upstreams.{name}"
    if not isinstance(entry, dict) or not isinstance(entry.get("tools"), list):
        raise LockFileError(f"{where}: expected an object with a `tools` list")
    hashes = entry.get("hashes", {})
    if not isinstance(hashes, dict):
        raise LockFileError(f"{where}.hashes: expected an object mapping tool names to hashes")
    tools: dict[str, LockedTool] = {}
    for index, definition in enumerate(entry["tools"]):
        tool = _read_tool(f"{where}.tools[{index}]", definition, hashes)
        if tool.name in tools:
            raise LockFileError(f"{where}: tool {tool.name!r} is locked twice")
        tools[tool.name] = tool
    server_info = entry.get("server_info")
    return LockedUpstream(
        tools,
        server_info if isinstance(server_info, dict) else {},
        _objects(where, entry, "prompts"),
        _objects(where, entry, "resources"),
        _objects(where, entry, "resource_templates"),
    )


def _read_tool(where: str, definition: Any, hashes: Mapping[str, Any]) -> LockedTool:
    if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
        raise LockFileError(f"{where}: expected a tool definition with a `name`")
    name = definition["name"]
    computed = tool_hash(definition)
    if hashes.get(name, computed) != computed:
        raise LockFileError(
            f"{where} ({name}): its hash does not match its definition (edited by hand?); "
            "run `mcp-firewall lock` to record the tool again"
        )
    return LockedTool(name, computed, definition)


def _objects(where: str, entry: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    items = entry.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise LockFileError(f"{where}.{key}: expected a list of objects")
    return tuple(items)


def write_lock(lock: ToolLock, path: str | os.PathLike[str]) -> None:
    """Write atomically (a temporary file renamed over the old one), so `run` never reads half a lock."""
    file = Path(path)
    text = json.dumps(lock.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=".tools.lock.", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- what changed ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolChange:
    """How one live tool differs from the lock. Every kind but `removed` is quarantined by `run`."""

    upstream: str
    kind: ChangeKind
    tool: str  # the live name (the locked name for `removed`)
    locked: Mapping[str, Any] | None = None  # the definition in the lock (for a rename: the old tool's)
    live: Mapping[str, Any] | None = None
    previous_name: str | None = None  # for `renamed`

    @property
    def quarantined(self) -> bool:
        return self.kind != "removed"

    @property
    def live_hash(self) -> str | None:
        return tool_hash(self.live) if self.live is not None else None

    def headline(self) -> str:
        where = f"upstream {self.upstream!r} tool {_printable(self.tool)!r}"
        if self.kind == "changed":
            return f"{where} changed since it was locked"
        if self.kind == "renamed":
            return f"{where} is new; it looks like {_printable(self.previous_name or '')!r} renamed"
        if self.kind == "added":
            return f"{where} is not in {LOCK_FILE_NAME}"
        return f"{where} is in {LOCK_FILE_NAME} but no longer offered"

    def details(self) -> list[str]:
        """What changed, one line per difference (an added tool: its whole pinned definition)."""
        if self.kind == "added" and self.live is not None:
            return diff_definitions({}, self.live)
        if self.locked is not None and self.live is not None:
            return diff_definitions(self.locked, self.live)
        return []

    def describe(self) -> str:
        return "\n".join([self.headline() + (":" if self.details() else ""), *("  " + d for d in self.details())])


def compare_tools(upstream: str, locked: LockedUpstream | None, live: Sequence[Mapping[str, Any]]) -> list[ToolChange]:
    """How `live` (an upstream's tools now) differs from its lock entry (None: the lock does not know it)."""
    entries = locked.tools if locked is not None else {}
    live_by_name = {tool["name"]: tool for tool in live if isinstance(tool.get("name"), str)}
    changes: list[ToolChange] = []
    added: list[Mapping[str, Any]] = []
    for name, tool in live_by_name.items():
        entry = entries.get(name)
        if entry is None:
            added.append(tool)
        elif tool_hash(tool) != entry.hash:
            changes.append(ToolChange(upstream, "changed", name, entry.definition, tool))
    removed = [entry.definition for name, entry in entries.items() if name not in live_by_name]
    renames = _pair_renames(added, removed)
    for tool in added:
        old = renames.get(tool["name"])
        if old is None:
            changes.append(ToolChange(upstream, "added", tool["name"], None, tool))
        else:
            changes.append(ToolChange(upstream, "renamed", tool["name"], old, tool, old["name"]))
    renamed_from = {old["name"] for old in renames.values()}
    changes.extend(
        ToolChange(upstream, "removed", old["name"], old, None) for old in removed if old["name"] not in renamed_from
    )
    return changes


def _pair_renames(
    added: Sequence[Mapping[str, Any]], removed: Sequence[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """Pair added with removed tools whose definitions (names aside) match best, most alike first."""
    candidates = sorted(
        (-score, index_new, index_old)
        for index_new, new in enumerate(added)
        for index_old, old in enumerate(removed)
        if (score := _similarity(new, old)) >= RENAME_SIMILARITY
    )
    pairs: dict[str, Mapping[str, Any]] = {}
    used: set[int] = set()
    for _, index_new, index_old in candidates:
        name = added[index_new]["name"]
        if name not in pairs and index_old not in used:
            pairs[name] = removed[index_old]
            used.add(index_old)
    return pairs


def _similarity(new: Mapping[str, Any], old: Mapping[str, Any]) -> float:
    a = {key: value for key, value in pinned(new).items() if key != "name"}
    b = {key: value for key, value in pinned(old).items() if key != "name"}
    if canonical_json(a) == canonical_json(b):
        return 1.0
    return difflib.SequenceMatcher(None, canonical_json(a).decode(), canonical_json(b).decode()).ratio()


def diff_definitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Every difference between the pinned parts of two tool definitions, one readable line each.

    Values are named by JSON pointer (`inputSchema/properties/path/type: "string" → "array"`); long
    or multi-line text (a description) is compared line by line (`- old` / `+ new`). Control characters are
    escaped, so that a definition cannot hide or forge lines of the report.
    """
    lines: list[str] = []
    for key in PINNED_KEYS:
        _diff_value(key, old.get(key, _ABSENT), new.get(key, _ABSENT), lines)
    return lines


def _diff_value(where: str, old: object, new: object, lines: list[str]) -> None:
    if old is _ABSENT and new is _ABSENT:
        return
    if old is not _ABSENT and new is not _ABSENT and canonical_json(old) == canonical_json(new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff_value(f"{where}/{_pointer_token(key)}", old.get(key, _ABSENT), new.get(key, _ABSENT), lines)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff_value(f"{where}/{index}", a, b, lines)
    elif isinstance(old, str) and isinstance(new, str) and _long_text(old, new):
        lines.append(f"{where}:")
        lines.extend("  " + line for line in _text_diff(old, new))
    elif old is _ABSENT:
        lines.append(f"{where}: added {_shown(new)}")
    elif new is _ABSENT:
        lines.append(f"{where}: removed (was {_shown(old)})")
    else:
        lines.append(f"{where}: {_shown(old)} → {_shown(new)}")


def _text_diff(old: str, new: str) -> list[str]:
    a, b = old.splitlines() or [""], new.splitlines() or [""]
    return [_printable(line) for line in difflib.ndiff(a, b) if line[:2] in ("- ", "+ ")]


def _long_text(*texts: str) -> bool:
    return any("\n" in text or len(text) > _SHORT_TEXT for text in texts)


def _pointer_token(key: str) -> str:
    return _printable(key.replace("~", "~0").replace("/", "~1"))


def _shown(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > _VALUE_LIMIT:
        text = text[:_VALUE_LIMIT] + f"… ({len(text)} characters)"
    return _printable(text)


def _printable(text: str) -> str:
    return text.translate(_ESCAPES)


# -- the lock as `run` applies it --------------------------------------------------------------------------

QuarantineReporter = Callable[[ToolChange], None]


class Pins:
    """Screens upstream tool lists against the lock: quarantined tools are left out of what agents see.

    Without a lock file nothing is screened. Each quarantine is reported once per tool and live
    definition (to every session's reporter that sees it first); a tool that matches the lock again
    and later changes is reported again. `watch` reloads the lock when the file changes, so that
    `mcp-firewall lock` releases a reviewed tool without a restart.
    """

    def __init__(self, path: Path, lock: ToolLock | None) -> None:
        self.path = path
        self.lock = lock
        self.listeners: list[Callable[[], None]] = []
        self._reported: set[tuple[str, str, str | None]] = set()
        self._stamp = _stamp(path)

    @classmethod
    def beside(cls, config_path: str | os.PathLike[str]) -> Pins:
        """The pins of a firewall file (raises `LockFileError` if its tools.lock is unreadable)."""
        return cls(lock_path(config_path), load_lock(config_path))

    def screen(self, lists: UpstreamLists, report: QuarantineReporter | None = None) -> UpstreamLists:
        """`lists` without its quarantined tools; `report` hears of each quarantine not reported before."""
        if self.lock is None:
            return lists
        changes = [
            c for c in compare_tools(lists.name, self.lock.upstreams.get(lists.name), lists.tools) if c.quarantined
        ]
        held = {change.tool for change in changes}
        matching = {(lists.name, tool.get("name")) for tool in lists.tools if tool.get("name") not in held}
        self._reported = {key for key in self._reported if key[:2] not in matching}
        for change in changes:
            key = (lists.name, change.tool, change.live_hash)
            if key not in self._reported:
                self._reported.add(key)
                if report is not None:
                    report(change)
        if not held:
            return lists
        return replace(lists, tools=[tool for tool in lists.tools if tool.get("name") not in held])

    async def watch(self) -> None:
        """Reload the lock whenever its file changes; a broken file leaves the last good lock in force."""
        while True:
            await anyio.sleep(POLL_SECONDS)
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                await self.reload()

    async def reload(self) -> bool:
        try:
            lock = await anyio.to_thread.run_sync(_read_if_present, self.path)
        except LockFileError as exc:
            logger.error("%s; the last good lock stays in force", exc)
            return False
        self.lock = lock
        if lock is None:
            logger.warning("%s was removed: tool definitions are no longer pinned", self.path)
        else:
            logger.warning("%s reloaded", self.path)
        for listener in self.listeners:
            listener()
        return True


def _read_if_present(path: Path) -> ToolLock | None:
    return read_lock(path) if path.exists() else None


def _stamp(path: Path) -> tuple[float, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size, stat.st_ino
