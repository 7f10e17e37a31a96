"""Newline-delimited message framing over byte streams, without worker threads.

The SDK's stdio server transport costs three thread round trips per message; these readers and
writers use the event loop's readiness notifications instead (pipes and sockets), and fall back to a
thread only for regular files, which the event loop cannot watch.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.to_thread

__all__ = ["FdWriter", "Oversized", "fd_chunks", "split_lines"]

_CHUNK = 1 << 16


class Oversized:
    """Stands in for a line that exceeded the size limit; its bytes were discarded."""

    def __init__(self, size: int) -> None:
        self.size = size


async def split_lines(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes | Oversized]:
    """Yield each newline-terminated line (without the newline); over-long lines as `Oversized`.

    Memory stays bounded: a line that grows past `max_bytes` is dropped as it streams in.
    """
    buffer = b""
    skipping = 0
    async for chunk in chunks:
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                skipping += len(chunk)
                continue
            yield Oversized(skipping + end)
            skipping = 0
            chunk = chunk[end + 1 :]
        buffer = buffer + chunk if buffer else chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = buffer[start:end]
            start = end + 1
            if line.strip():
                yield line if len(line) <= max_bytes else Oversized(len(line))
        buffer = buffer[start:]
        if len(buffer) > max_bytes:
            skipping, buffer = len(buffer), b""
    if buffer.strip() and not skipping:
        yield buffer if len(buffer) <= max_bytes else Oversized(len(buffer))


def _is_regular_file(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


async def fd_chunks(fd: int) -> AsyncIterator[bytes]:
    """Read a file descriptor until end of file, waking on readiness rather than in a thread."""
    if _is_regular_file(fd):
        while chunk := await anyio.to_thread.run_sync(os.read, fd, _CHUNK):
            yield chunk
        return
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not chunk:
                return
            yield chunk
    finally:
        os.set_blocking(fd, True)


class FdWriter:
    """Writes whole messages to a file descriptor; concurrent writers never interleave.

    The common case — the pipe has room — is one `os.write` with no await at all.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._regular = _is_regular_file(fd)
        if not self._regular:
            os.set_blocking(fd, False)
        self._busy = False
        self._idle = anyio.Event()
        self._idle.set()

    async def send(self, data: bytes) -> None:
        while self._busy:
            await self._idle.wait()
        if self._regular:
            os.write(self._fd, data)
            return
        written = self._write_some(data)
        if written == len(data):
            return
        self._busy = True
        self._idle = anyio.Event()
        try:
            view = memoryview(data)[written:]
            while view:
                await anyio.wait_writable(self._fd)
                view = view[self._write_some(view) :]
        finally:
            self._busy = False
            self._idle.set()

    def _write_some(self, data: bytes | memoryview) -> int:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    def restore_blocking(self) -> None:
        if not self._regular:
            os.set_blocking(self._fd, True)


Sender = Callable[[bytes], Awaitable[None]]
