"""The writer's file operations: resuming the chain from disk, inter-process locking, rotation targets."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from mcp_firewall.audit._chain import (
    ZERO_HASH,
    ChainHead,
    chain_files,
    head_path,
    parse_record,
    read_head,
    read_last_lines,
    rotated_files,
)
from mcp_firewall.errors import AuditWriteError

__all__ = [
    "last_chain_record",
    "lock_file",
    "next_rotation_target",
    "open_append",
    "resume_position",
    "size_if_current",
]

_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def open_append(path: Path) -> int:
    """An append-only descriptor for `path`, created (mode 0600) if missing."""
    return os.open(path, _OPEN_FLAGS, 0o600)


if sys.platform == "win32":  # pragma: no cover - no advisory locks; one writer per log on Windows

    def lock_file(fd: int, *, exclusive: bool) -> None:
        """No-op on Windows."""

else:
    import fcntl

    def lock_file(fd: int, *, exclusive: bool) -> None:
        """Take (or, with `exclusive=False`, release) the advisory lock that serialises writers across processes."""
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_UN)


def size_if_current(path: Path, fd: int) -> int | None:
    """The size of the file open as `fd` if `path` still names it; `None` once another writer rotated it away."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return None
    opened = os.fstat(fd)
    if (named.st_ino, named.st_dev) != (opened.st_ino, opened.st_dev):
        return None
    return opened.st_size


def next_rotation_target(path: Path) -> Path:
    """`<path>.N` for the next N: one more than the highest that exists (other writers may have rotated too)."""
    highest = max((number for number, _ in rotated_files(path)), default=0)
    return path.with_name(f"{path.name}.{highest + 1}")


def resume_position(path: Path) -> tuple[int, str]:
    """The (seq, hash) the chain continues from, checked against the head file."""
    try:
        head = read_head(head_path(path))
    except ValueError as exc:
        raise AuditWriteError(f"cannot resume audit log: {exc}") from None
    last = last_chain_record(path)
    if last is None:
        if head is not None:
            raise AuditWriteError(
                f"{head_path(path)} says seq {head.seq} was written, but {path} and its rotated files hold no "
                "records: the log may have been truncated or deleted (move the head file aside to start a new chain)"
            )
        return 0, ZERO_HASH
    seq, digest = last
    if head is not None:
        _check_head(path, head, seq, digest)
    return seq, digest


def _check_head(path: Path, head: ChainHead, seq: int, digest: str) -> None:
    if head.seq > seq:
        raise AuditWriteError(
            f"{path} ends at seq {seq}, but {head_path(path)} says seq {head.seq} was written: "
            "the log may have been truncated (run `mcp-firewall audit verify`)"
        )
    if head.seq == seq and head.hash != digest:
        raise AuditWriteError(
            f"the last record of {path} (seq {seq}) does not match {head_path(path)}: "
            "the log may have been truncated or rewritten (run `mcp-firewall audit verify`)"
        )


def last_chain_record(path: Path) -> tuple[int, str] | None:
    """(seq, hash) of the newest record in the log or, if it is empty or missing, its newest rotated file."""
    for file in reversed(chain_files(path)):
        last = _last_record(file)
        if last is not None:
            return last
    return None


def _last_record(file: Path) -> tuple[int, str] | None:
    with file.open("rb") as stream:
        end = stream.seek(0, os.SEEK_END)
        lines = read_last_lines(stream, end, 1)
        if not lines:
            return None
        stream.seek(end - 1)
        complete = stream.read(1) == b"\n"
    if not complete:
        raise AuditWriteError(
            f"{file} ends with an incomplete record (torn write?): remove the partial last line, "
            "or move the file aside, then start again"
        )
    return _chain_position(file, lines[0])


def _chain_position(file: Path, line: bytes) -> tuple[int, str]:
    try:
        record = parse_record(line)
    except ValueError as exc:
        raise AuditWriteError(f"the last line of {file} is not an audit record: {exc}") from None
    seq, digest = record.get("seq"), record.get("hash")
    if type(seq) is not int or not isinstance(digest, str):
        raise AuditWriteError(f"the last line of {file} is not an audit record: no seq or hash")
    return seq, digest
