"""Filesystem-path checks for the `within` and `not_within` constraints.

Security model
--------------
The firewall cannot see the upstream's filesystem (no I/O here), so it never *resolves* a path: it
only accepts paths that are already in a canonical, unambiguous spelling, and compares them as strings
component by component:

* absolute (starts with ``/``), POSIX separators only (no backslash);
* no ``.`` or ``..`` segment, no empty segment (``//``, a trailing ``/`` except the root itself);
* no NUL character.

A path that breaks one of these rules *fails* with a message that says so; it is never rewritten, so
what the upstream receives is exactly what was checked. ``/srv/docs`` is within ``/srv/docs``;
``/srv/docs2`` is not. Comparison is exact and case-sensitive (POSIX). Symbolic links inside an allowed
directory are outside what a pure policy can see; point `within` at trees without untrusted symlinks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mcp_firewall.policy.argpaths import json_type, render_value

__all__ = ["DirSet", "build_not_within", "build_within", "compile_dirs", "path_problem"]


def path_problem(path: str) -> str | None:
    """None when `path` is a normalised absolute POSIX path, else why it is not (a short clause)."""
    if not path.startswith("/"):
        return "it is not absolute (it must start with '/')"
    if "\x00" in path:
        return "it contains a NUL character"
    if "\\" in path:
        return "it contains a backslash"
    if path == "/":
        return None
    # Segments are delimited by "/", so substring tests find every bad segment (C speed).
    if "//" in path or path.endswith("/"):
        return "it has an empty segment ('//' or a trailing '/')"
    if "/../" in path or path.endswith("/.."):
        return "it has a '..' segment"
    if "/./" in path or path.endswith("/."):
        return "it has a '.' segment"
    return None


@dataclass(frozen=True, slots=True)
class DirSet:
    """A compiled list of normalised directories; `contains(path)` is a component-wise prefix test.

    `path` must already be normalised (see `path_problem`); the constraint checks that first.
    """

    dirs: tuple[str, ...]
    everything: bool  # "/" is listed: every absolute path is within

    def contains(self, path: str) -> str | None:
        """The listed directory that `path` is equal to or beneath, or None."""
        if self.everything:
            return "/"
        for directory in self.dirs:
            if path == directory or (path.startswith(directory) and path[len(directory)] == "/"):
                return directory
        return None

    def describe(self, limit: int = 3) -> str:
        """The directories as a short comma-separated list for messages."""
        shown = ", ".join(self.dirs[:limit])
        return shown + (f" (and {len(self.dirs) - limit} more)" if len(self.dirs) > limit else "")


def compile_dirs(dirs: Iterable[str], key: str = "within") -> DirSet:
    """Validate and compile the directories of a `within`/`not_within` list.

    Raises ValueError when a directory is not a normalised absolute path, so that a policy never holds
    an entry such as `/srv/docs/` or `/srv/../etc` that could not match what it looks like.
    """
    checked: list[str] = []
    for directory in dirs:
        if not isinstance(directory, str):
            raise ValueError(f"{key}: every entry must be a string path")
        problem = path_problem(directory)
        if problem is not None:
            raise ValueError(f"{key}: {directory[:80]!r} is not a normalised absolute path: {problem}")
        checked.append(directory)
    if not checked:
        raise ValueError(f"{key}: list at least one directory")
    unique = tuple(dict.fromkeys(checked))
    return DirSet(dirs=unique, everything="/" in unique)


def _dir_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of directories")
    return list(value)


def _shape_problem(arg: Any, secret: bool) -> str | None:
    if not isinstance(arg, str):
        return f"expected a path string, got {json_type(arg)}"
    problem = path_problem(arg)
    if problem is not None:
        return (
            f"path {render_value(arg, secret)} is not a normalised absolute path: {problem}; send the normalised path"
        )
    return None


def build_within(value: Any, secret: bool) -> Callable[[Any], str | None]:
    """The `within: [dir, ...]` check: a normalised absolute path equal to or beneath a listed dir."""
    dirs = compile_dirs(_dir_list(value), "within")

    def check(arg: Any) -> str | None:
        problem = _shape_problem(arg, secret)
        if problem is None and dirs.contains(arg) is None:
            return f"path {render_value(arg, secret)} is not within {dirs.describe()}"
        return problem

    return check


def build_not_within(value: Any, secret: bool) -> Callable[[Any], str | None]:
    """The `not_within: [dir, ...]` check: a normalised absolute path in none of the listed dirs."""
    dirs = compile_dirs(_dir_list(value), "not_within")

    def check(arg: Any) -> str | None:
        problem = _shape_problem(arg, secret)
        hit = dirs.contains(arg) if problem is None else None
        return problem if hit is None else f"path {render_value(arg, secret)} is within {hit}, which is not allowed"

    return check
