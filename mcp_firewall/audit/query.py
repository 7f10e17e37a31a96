"""Reading the audit log for humans: `audit tail`, `audit query`, one readable line per record, shadow summaries."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mcp_firewall.audit._chain import AuditRecord, chain_files, parse_record, read_last_lines, rotated_files

__all__ = ["count_shadow", "format_record", "query", "read_records", "summarize_shadow", "tail"]

_POLL_S = 0.25
_BLOCK = 8192
# Control characters, line and paragraph separators and bidi overrides could forge or hide output lines.
_UNSAFE = [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = str.maketrans({code: f"\\u{code:04x}" for code in _UNSAFE})


def read_records(path: str | os.PathLike[str]) -> Iterator[AuditRecord]:
    """Every record of one file, in order; `ValueError` naming `file:line` for a line that is not a record."""
    file = Path(path)
    with file.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if raw.strip():
                yield _parse_at(raw, file, number)


def query(
    paths: Sequence[str | os.PathLike[str]],
    *,
    agent: str | None = None,
    decision: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
) -> Iterator[AuditRecord]:
    """Records of `paths` (in the order given) that match every filter given: `since <= ts < until`.

    A naive datetime is taken as UTC. `decision` matches the `decision` field, so it selects decision
    records (outcome records carry a decision only if the proxy passed one).
    """
    wanted = {key: value for key, value in (("agent", agent), ("decision", decision), ("kind", kind)) if value}
    lower = _ts_text(since) if since is not None else None
    upper = _ts_text(until) if until is not None else None
    for path in paths:
        for record in read_records(path):
            if _matches(record, wanted, lower, upper):
                yield record


def _matches(record: AuditRecord, wanted: dict[str, str], lower: str | None, upper: str | None) -> bool:
    if any(record.get(key) != value for key, value in wanted.items()):
        return False
    ts = record.get("ts")
    if not isinstance(ts, str):
        return lower is None and upper is None
    return (lower is None or ts >= lower) and (upper is None or ts < upper)


def _ts_text(moment: datetime) -> str:
    """The record `ts` format, so that timestamps compare as strings."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def tail(
    path: str | os.PathLike[str],
    n: int = 20,
    follow: bool = False,
    *,
    poll_interval: float = _POLL_S,
) -> Generator[AuditRecord, None, None]:
    """The last `n` records of the log (reaching into rotated files if needed); with `follow`, then every new one.

    Following survives rotation: when `<path>` is replaced by a new file, the rest of the old one is
    read, then the new one from its start. It polls every `poll_interval` seconds and never returns;
    `close()` the generator to stop (the CLI stops on Ctrl-C).
    """
    log = Path(path)
    stream = _open_or_none(log)
    try:
        end = _end_of_last_line(stream) if stream else 0
        yield from _last_records(log, stream, end, n)
        if follow:
            if stream is not None:
                stream.seek(end)
            follower, stream = _follow(log, stream, poll_interval), None  # the follower owns the stream now
            yield from follower
    finally:
        if stream is not None:
            stream.close()


def _end_of_last_line(stream: BinaryIO) -> int:
    """The offset just after the last newline: a record being written is left for `follow` to read whole."""
    position = stream.seek(0, os.SEEK_END)
    while position > 0:
        step = min(_BLOCK, position)
        stream.seek(position - step)
        newline = stream.read(step).rfind(b"\n")
        if newline >= 0:
            return position - step + newline + 1
        position -= step
    return 0


def _last_records(log: Path, stream: BinaryIO | None, end: int, n: int) -> list[AuditRecord]:
    lines = read_last_lines(stream, end, n) if stream else []
    records = [_parse_at(line, log, 0) for line in lines if line.strip()]
    older = [file for file in chain_files(log) if file != log]
    while len(records) < n and older:
        file = older.pop()
        with file.open("rb") as rotated:
            extra = read_last_lines(rotated, rotated.seek(0, os.SEEK_END), n - len(records))
        records[:0] = [_parse_at(line, file, 0) for line in extra if line.strip()]
    return records


def _follow(log: Path, stream: BinaryIO | None, poll_interval: float) -> Iterator[AuditRecord]:
    """Yield records as they are appended, moving on to the next file at each rotation. Never returns."""
    pending = b""
    try:
        while True:
            chunk = stream.read() if stream else b""
            if chunk:
                pending = yield from _complete_lines(log, pending + chunk)
            elif _replaced(log, stream):
                following = log
                if stream is not None:
                    yield from _complete_lines(log, pending + stream.read())  # written just before the rotation
                    following = _next_file(log, stream)
                    stream.close()
                stream, pending = _open_or_none(following), b""
            else:
                time.sleep(poll_interval)
    finally:
        if stream is not None:
            stream.close()


def _complete_lines(log: Path, data: bytes) -> Generator[AuditRecord, None, bytes]:
    """Yield the records of the complete lines in `data`; return the incomplete rest."""
    lines = data.split(b"\n")
    rest = lines.pop()
    for line in lines:
        if line.strip():
            yield _parse_at(line, log, 0)
    return rest


def _replaced(log: Path, stream: BinaryIO | None) -> bool:
    """Whether `<path>` is now a different file from the one being read (it was rotated)."""
    if not log.exists():
        return False
    return stream is None or not _same_file(log, os.fstat(stream.fileno()))


def _next_file(log: Path, stream: BinaryIO) -> Path:
    """The file written after the one `stream` reads: the next rotated file if several rotations passed, else `log`."""
    here = os.fstat(stream.fileno())
    rotated = rotated_files(log)
    for index, (_, file) in enumerate(rotated):
        if _same_file(file, here):
            return rotated[index + 1][1] if index + 1 < len(rotated) else log
    return log


def _same_file(file: Path, other: os.stat_result) -> bool:
    try:
        mine = os.stat(file)
    except FileNotFoundError:
        return False
    return (mine.st_ino, mine.st_dev) == (other.st_ino, other.st_dev)


def _open_or_none(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


def _parse_at(raw: bytes, file: Path, number: int) -> AuditRecord:
    try:
        return parse_record(raw)
    except ValueError as exc:
        where = f"{file}:{number}" if number else str(file)
        raise ValueError(f"{where}: not an audit record ({exc})") from None


def format_record(record: AuditRecord) -> str:
    """One readable line: time, decision (or outcome status), agent, method and target, then why or how long.

    `2026-12-04T20:31:07Z  deny   support-bot  tools/call files__write_file  path '/etc' is not within /srv/docs`
    Control characters and bidi overrides in any field are escaped, so a record cannot forge lines.
    """
    ts = _text(record.get("ts"))
    if len(ts) == 24 and ts.endswith("Z"):
        ts = ts[:19] + "Z"  # milliseconds are for machines
    if record.get("kind") == "outcome":
        label, detail = _text(record.get("status")), _duration(record.get("duration_ms"))
    else:
        label, detail = _text(record.get("decision")), _decision_detail(record)
    action = " ".join(part for part in (_text(record.get("method")), _target(record)) if part) or "-"
    line = f"{ts}  {label:<6} {_text(record.get('agent')) or '-'}  {action}  {detail}"
    return line.rstrip()


def _decision_detail(record: AuditRecord) -> str:
    if record.get("reason") is not None:
        return _text(record["reason"])
    if record.get("scope") is not None:
        return f"scope {_text(record['scope'])}"
    return ""


def _duration(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g} ms"
    return ""


def _target(record: AuditRecord) -> str:
    for key in ("tool", "uri", "prompt"):
        if record.get(key) is not None:
            return _text(record[key])
    return ""


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).translate(_ESCAPES)


def count_shadow(records: Iterable[AuditRecord]) -> Counter[tuple[str, str, str]]:
    """How often each (agent, tool, reason) was a `shadow-deny`: what the tighter policy would break."""
    return Counter(
        (_text(record.get("agent")) or "-", _target(record) or "-", _text(record.get("reason")) or "-")
        for record in records
        if record.get("decision") == "shadow-deny"
    )


def summarize_shadow(records: Iterable[AuditRecord]) -> str:
    """`count_shadow` as a small table, most frequent first."""
    counts = count_shadow(records)
    if not counts:
        return "no shadow-deny decisions"
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    rows = [("count", "agent", "tool", "reason"), *((str(n), *key) for key, n in ordered)]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip() for row in rows]
    return "\n".join(lines)
