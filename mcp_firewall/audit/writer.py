"""The audit log writer: one hash-chained JSON line per decision and per outcome.

A record is written with one `write()` and is in the file (the OS's page cache) before the call
returns; `fsync` decides when it is also on disk. The chain resumes where the log left off, across
restarts and rotations. Several processes may share one log (each stdio client starts its own
firewall): an advisory lock serialises their appends, and each catches up with the others' records.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from mcp_firewall.audit._chain import ChainHead, Timestamps, canonical_json, head_path, read_head, write_head
from mcp_firewall.audit._files import (
    last_chain_record,
    lock_file,
    next_rotation_target,
    open_append,
    resume_position,
    size_if_current,
)
from mcp_firewall.errors import AuditWriteError

__all__ = ["SYNC_INTERVAL_S", "AuditLog", "FsyncMode"]

logger = logging.getLogger(__name__)

FsyncMode = Literal["always", "batch", "never"]
SYNC_INTERVAL_S: Final = 0.1
_P = ParamSpec("_P")
_T = TypeVar("_T")
_FSYNC_MODES: Final = ("always", "batch", "never")
_RESERVED: Final = frozenset({"ts", "seq", "kind", "prev", "hash"})


class AuditLog:
    """Append-only, hash-chained JSON Lines audit log. Create it with `AuditLog.open`.

    `record_decision` and `record_outcome` are synchronous and cheap: call them on the event loop.
    With `fsync="batch"`, run `run_syncer()` in the proxy's task group. Always `close()` at exit.
    """

    def __init__(self, path: Path, *, fsync: FsyncMode, max_bytes: int | None, clock: Callable[[], float]) -> None:
        self._path = path
        self._head_path = head_path(path)
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._timestamp = Timestamps(clock)
        self._lock = threading.Lock()  # the file and the chain state; the syncer thread takes it too
        self._head_lock = threading.Lock()
        self._head_written: tuple[int, str] = (-1, "")
        self._dirty = False
        self._closed = False
        self._broken: str | None = None
        with contextlib.ExitStack() as on_error:
            fd = open_append(path)
            on_error.callback(os.close, fd)
            lock_file(fd, exclusive=True)
            self._seq, self._hash = resume_position(path)
            self._size = os.fstat(fd).st_size
            lock_file(fd, exclusive=False)
            on_error.pop_all()
        self._fd: int | None = fd

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        fsync: FsyncMode = "batch",
        max_bytes: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> AuditLog:
        """Open (or create) the log at `path` and resume its chain.

        The chain resumes from the last record of the log (or of its newest rotated file). If
        `<path>.head` says more was written than the log holds, or names a different last record,
        this refuses with `AuditWriteError`: the log may have been truncated.
        """
        if fsync not in _FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(_FSYNC_MODES)}, not {fsync!r}")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        log_path = Path(path)
        try:
            return cls(log_path, fsync=fsync, max_bytes=max_bytes, clock=clock)
        except OSError as exc:
            raise AuditWriteError(f"cannot open audit log {log_path}: {_describe(exc)}") from exc

    @property
    def path(self) -> Path:
        return self._path

    @property
    def seq(self) -> int:
        """The `seq` of the last record written (0 before the first record of a new chain)."""
        return self._seq

    @property
    def last_hash(self) -> str:
        """The `hash` of the last record written (64 zeros before the first record of a new chain)."""
        return self._hash

    def record_decision(
        self,
        *,
        agent: str | None,
        decision: str,
        method: str | None = None,
        session: str | None = None,
        upstream: str | None = None,
        tool: str | None = None,
        uri: str | None = None,
        prompt: str | None = None,
        reason: str | None = None,
        scope: str | None = None,
        trace_id: str | None = None,
        args: object = None,
        **extra: object,
    ) -> str:
        """Write a `decision` record before the request is forwarded; return its hash.

        Keys whose value is `None` are left out. `extra` adds keys the SPEC does not name yet.
        Raises `AuditWriteError` if the record cannot be written: refuse the call.
        """
        fields = {
            "agent": agent,
            "session": session,
            "method": method,
            "upstream": upstream,
            "tool": tool,
            "uri": uri,
            "prompt": prompt,
            "decision": decision,
            "reason": reason,
            "scope": scope,
            "trace_id": trace_id,
            "args": args,
        }
        return self._append("decision", fields, extra)

    def record_outcome(
        self,
        *,
        agent: str | None,
        status: str,
        duration_ms: float,
        method: str | None = None,
        session: str | None = None,
        upstream: str | None = None,
        tool: str | None = None,
        uri: str | None = None,
        prompt: str | None = None,
        decision: str | None = None,
        scope: str | None = None,
        trace_id: str | None = None,
        **extra: object,
    ) -> str:
        """Write an `outcome` record when the upstream's answer comes back (`status` is `ok` or `error`)."""
        fields = {
            "agent": agent,
            "session": session,
            "method": method,
            "upstream": upstream,
            "tool": tool,
            "uri": uri,
            "prompt": prompt,
            "decision": decision,
            "scope": scope,
            "trace_id": trace_id,
            "status": status,
            "duration_ms": duration_ms,
        }
        return self._append("outcome", fields, extra)

    def sync(self) -> None:
        """Make every record written so far durable (unless `fsync="never"`) and rewrite the head file.

        Safe to call from a worker thread while the event loop keeps writing records.
        """
        with self._lock:
            if not self._dirty or self._fd is None or self._broken is not None:
                return
            head = ChainHead(self._seq, self._hash, self._path.name)
            fd = self._dup_current()
            self._dirty = False
        try:
            if self._fsync != "never":
                self._fsync_or_break(fd)
        finally:
            os.close(fd)
        self._store_head(head)

    async def run_syncer(self, interval: float = SYNC_INTERVAL_S) -> None:
        """With `fsync="batch"`: sync every `interval` seconds while records are pending, and once more at the end.

        Start it in the proxy's task group; cancelling it performs the final sync. The fsync runs in a
        worker thread so the event loop is never blocked on the disk. Returns at once in other modes.
        """
        if self._fsync != "batch":
            return
        try:
            while not self._closed:
                await anyio.sleep(interval)
                if self._dirty:
                    await self._sync_in_thread()
        finally:
            with anyio.CancelScope(shield=True):
                await self._sync_in_thread()

    def close(self) -> None:
        """Sync (per the fsync mode), write the head file and close the log. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.sync()
        finally:
            with self._lock:
                fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------

    def _append(self, kind: str, fields: Mapping[str, object], extra: dict[str, object]) -> str:
        record = {key: value for key, value in fields.items() if value is not None}
        if extra:
            _add_extra(record, extra)
        record["kind"] = kind
        with self._lock:
            self._ensure_writable()
            try:
                self._guarded(self._lock_current_file)
                seq, line, digest = self._link(record)
                if self._max_bytes is not None and self._size and self._size + len(line) > self._max_bytes:
                    self._rotate()
                    seq, line, digest = self._link(record)  # another writer may have moved the chain on meanwhile
                self._write_line(line)
                self._seq, self._hash = seq, digest
                self._after_write()
            finally:
                self._guarded(self._unlock_file)
        return digest

    def _link(self, record: dict[str, object]) -> tuple[int, bytes, str]:
        """Chain the record onto the last one; return its seq, the line to write and its hash."""
        record["seq"] = seq = self._seq + 1
        record["prev"] = self._hash
        record["ts"] = self._timestamp()
        body = _encode(record)
        digest = hashlib.sha256(body).hexdigest()
        return seq, b"".join((body[:-1], b',"hash":"', digest.encode("ascii"), b'"}\n')), digest

    def _ensure_writable(self) -> None:
        if self._closed:
            raise AuditWriteError(f"audit log {self._path} is closed")
        if self._broken is not None:
            raise AuditWriteError(f"audit log {self._path} is unusable: {self._broken}")
        if self._fd is None:
            self._guarded(self._reopen)

    def _lock_current_file(self) -> None:
        """Hold the inter-process lock on the file `<path>` names now, with seq and prev caught up to it."""
        assert self._fd is not None
        lock_file(self._fd, exclusive=True)
        while (size := size_if_current(self._path, self._fd)) is None:  # another writer rotated it away
            self._reopen()
            assert self._fd is not None
            lock_file(self._fd, exclusive=True)
        if size != self._size:  # another writer appended
            self._seq, self._hash = last_chain_record(self._path) or (self._seq, self._hash)
            self._size = size

    def _reopen(self) -> None:
        old_fd, self._fd = self._fd, None
        if old_fd is not None:
            os.close(old_fd)
        self._fd = open_append(self._path)
        self._size = -1  # unknown: catch up under the lock

    def _unlock_file(self) -> None:
        if self._fd is not None:
            lock_file(self._fd, exclusive=False)

    def _write_line(self, line: bytes) -> None:
        assert self._fd is not None
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            raise AuditWriteError(f"cannot write to audit log {self._path}: {_describe(exc)}") from exc
        if written != len(line):
            self._undo_partial_write()
            raise AuditWriteError(f"cannot write to audit log {self._path}: short write (disk full?)")
        self._size += written

    def _undo_partial_write(self) -> None:
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = f"a partial record could not be removed ({_describe(exc)})"

    def _after_write(self) -> None:
        if self._fsync != "always":
            self._dirty = True
            return
        assert self._fd is not None
        self._fsync_or_break(self._fd)
        self._store_head(ChainHead(self._seq, self._hash, self._path.name))

    def _rotate(self) -> None:
        """Move the full file to `<path>.N` and start a new one; the chain (seq, prev) carries on."""
        target = next_rotation_target(self._path)
        assert self._fd is not None
        self._guarded(os.rename, self._path, target)
        old_fd, self._fd = self._fd, None
        try:
            if self._fsync != "never":
                self._fsync_or_break(old_fd)
        finally:
            os.close(old_fd)  # releases the lock on the old file
        self._dirty = False
        self._store_head(ChainHead(self._seq, self._hash, target.name))
        self._guarded(self._reopen)
        self._guarded(self._lock_current_file)

    # -- durability ---------------------------------------------------------------------------------

    def _fsync_or_break(self, fd: int) -> None:
        """fsync, and after a failure refuse every later record: the kernel may have dropped the data."""
        try:
            os.fsync(fd)
        except OSError as exc:
            self._broken = f"fsync failed ({_describe(exc)}); records may have been lost"
            raise AuditWriteError(f"cannot sync audit log {self._path}: {_describe(exc)}") from exc

    def _store_head(self, head: ChainHead) -> None:
        """Rewrite the head file, unless it already names a later record (ours or another writer's)."""
        with self._head_lock:
            if head.seq < self._head_written[0] or (head.seq, head.file) == self._head_written:
                return
            try:
                if not _head_is_ahead(self._head_path, head.seq):
                    write_head(self._head_path, head, durable=self._fsync != "never")
            except OSError as exc:
                raise AuditWriteError(f"cannot write {self._head_path}: {_describe(exc)}") from exc
            self._head_written = (head.seq, head.file)

    async def _sync_in_thread(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.sync)
        except AuditWriteError:
            logger.exception("audit log sync failed")

    # -- files --------------------------------------------------------------------------------------

    def _dup_current(self) -> int:
        assert self._fd is not None
        return self._guarded(os.dup, self._fd)

    def _guarded(self, action: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return action(*args, **kwargs)
        except OSError as exc:
            raise AuditWriteError(f"audit log {self._path}: {_describe(exc)}") from exc


def _add_extra(record: dict[str, object], extra: dict[str, object]) -> None:
    clash = _RESERVED.intersection(extra)
    if clash:
        raise ValueError(f"the audit log sets {', '.join(sorted(clash))} itself")
    record.update((key, value) for key, value in extra.items() if value is not None)


def _encode(record: dict[str, object]) -> bytes:
    try:
        return canonical_json(record)
    except (TypeError, ValueError) as exc:
        raise AuditWriteError(f"audit record cannot be serialised as JSON: {exc}") from exc


def _head_is_ahead(path: Path, seq: int) -> bool:
    try:
        head = read_head(path)
    except ValueError:
        return False  # unreadable: overwrite it
    return head is not None and head.seq > seq


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)
