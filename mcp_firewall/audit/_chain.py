"""What the writer, the verifier and the readers share: the hash rule, the head file, the chain's files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

__all__ = [
    "ZERO_HASH",
    "AuditRecord",
    "ChainHead",
    "Timestamps",
    "canonical_json",
    "chain_files",
    "head_path",
    "parse_record",
    "read_head",
    "read_last_lines",
    "record_hash",
    "rotated_files",
    "write_head",
]

AuditRecord = dict[str, Any]
"""One parsed line of the audit log."""

ZERO_HASH: Final = "0" * 64
"""The `prev` of the very first record of a log chain."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_BLOCK = 8192


def canonical_json(record: Mapping[str, object]) -> bytes:
    """The bytes that are hashed: sorted keys, separators `,` and `:`, UTF-8, no ASCII escaping."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def record_hash(record: Mapping[str, object]) -> str:
    """Hex SHA-256 of the record without its `hash` key, serialised as canonical JSON."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in one object")
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_record(line: bytes | str) -> AuditRecord:
    """Parse one log line; `ValueError` if it is not one JSON object (duplicate keys, NaN and Infinity refused)."""
    value = json.loads(line, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True)
class ChainHead:
    """The last record the writer made durable: `<path>.head` holds it as JSON."""

    seq: int
    hash: str
    file: str


def head_path(path: Path) -> Path:
    """`<path>.head`, kept beside the log."""
    return path.with_name(path.name + ".head")


def read_head(path: Path) -> ChainHead | None:
    """The head stored at `path` (a `.head` file), `None` if absent; `ValueError` if malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    seq, digest, file = data.get("seq"), data.get("hash"), data.get("file", "")
    if type(seq) is not int or not isinstance(digest, str) or not _HEX64.fullmatch(digest) or not isinstance(file, str):
        raise ValueError(f"{path}: expected {{'seq': int, 'hash': 64 hex digits, 'file': str}}")
    return ChainHead(seq, digest, file)


def write_head(path: Path, head: ChainHead, *, durable: bool) -> None:
    """Replace the head file atomically (temporary file + `os.replace`); fsync the data first if `durable`."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # writers may share a log
    data = json.dumps({"seq": head.seq, "hash": head.hash, "file": head.file}).encode("ascii") + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _rotation_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """The rotated files `<path>.N` that exist, as `(N, file)`, oldest (lowest N) first."""
    pattern = _rotation_pattern(path)
    directory = path.parent
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(match.group(1)), directory / name) for name in names if (match := pattern.fullmatch(name))]
    return sorted(found)


def chain_files(path: Path) -> list[Path]:
    """Every file of the log at `path` in chain order: `<path>.1`, `<path>.2`, …, then `<path>` if it exists."""
    path = Path(path)
    files = [file for _, file in rotated_files(path)]
    if path.exists():
        files.append(path)
    return files


def read_last_lines(file: BinaryIO, end: int, count: int) -> list[bytes]:
    """Up to `count` complete-or-not lines ending at byte `end` of `file`, oldest first, without newlines.

    Reads backwards in blocks, so the cost does not grow with the file's size.
    """
    if count <= 0 or end <= 0:
        return []
    data = b""
    start = end
    while start > 0 and data.count(b"\n", 0, max(len(data) - 1, 0)) < count:
        step = min(_BLOCK, start)
        start -= step
        file.seek(start)
        data = file.read(step) + data
    lines = data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first piece may be a partial line
    return lines[-count:]


class Timestamps:
    """RFC 3339 UTC with milliseconds; the part up to the second is formatted once per second."""

    __slots__ = ("_clock", "_prefix", "_second")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, millis = divmod(int(self._clock() * 1000), 1000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = second
        return f"{self._prefix}{millis:03d}Z"
