"""`audit verify`: check the hash chain of a log and its rotated files, and name the first bad record."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from mcp_firewall.audit._chain import ZERO_HASH, AuditRecord, ChainHead, parse_record, read_head, record_hash

__all__ = ["BadRecord", "VerifyResult", "verify"]


class BadRecord(NamedTuple):
    """Where the chain first breaks: the file and 1-based line, the record's seq if known, and why."""

    file: Path
    line: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        what = "record" if self.seq is None else f"record seq {self.seq}"
        return f"{what} at {self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class VerifyResult:
    """`ok` when every record checked out; `records` counts the records that did, in chain order."""

    ok: bool
    records: int
    first_bad: BadRecord | None
    last_seq: int | None = None
    last_hash: str | None = None


def verify(
    paths: Sequence[str | os.PathLike[str]],
    *,
    head: str | os.PathLike[str] | Literal["auto"] | None = "auto",
    anchors: Collection[str] = (),
    from_start: bool = True,
) -> VerifyResult:
    """Check every record's hash, the `prev` links and `seq` steps across `paths`, in the order given.

    Pass the rotated files oldest first and the current file last (`chain_files(path)` lists them).
    `head` is the head file to check the end of the chain against: `"auto"` uses `<last path>.head`
    if it exists, `None` skips the check. `anchors` are record hashes known from elsewhere (the
    `mcp_firewall.audit.hash` span attribute) that must all be in the chain. With `from_start=False`
    the chain may begin mid-way (older rotated files were deleted by retention): the first record's
    `prev` is then taken on trust.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("verify needs at least one file")
    walker = _ChainWalker(from_start=from_start, anchors=anchors)
    bad = walker.load_head(_head_file(files[-1], head))
    for file in files:
        bad = bad or walker.walk(file)
    bad = bad or walker.finish(files[-1])
    return walker.result(bad)


def _head_file(last: Path, head: str | os.PathLike[str] | None) -> Path | None:
    if head is None:
        return None
    if head == "auto":
        auto = last.with_name(last.name + ".head")
        return auto if auto.exists() else None
    return Path(head)


class _ChainWalker:
    """Carries the chain state from record to record and from file to file."""

    def __init__(self, *, from_start: bool, anchors: Collection[str]) -> None:
        self._from_start = from_start
        self._missing_anchors = set(anchors)
        self._head: ChainHead | None = None
        self._head_file: Path | None = None
        self._seq: int | None = None
        self._hash = ZERO_HASH
        self._count = 0
        self._position: tuple[Path, int] | None = None

    def load_head(self, file: Path | None) -> BadRecord | None:
        if file is None:
            return None
        try:
            self._head = read_head(file)
        except (OSError, ValueError) as exc:
            return BadRecord(file, 1, None, f"the head file cannot be read: {exc}")
        self._head_file = file
        return None

    def walk(self, file: Path) -> BadRecord | None:
        try:
            with file.open("rb") as stream:
                for number, raw in enumerate(stream, start=1):
                    self._position = (file, number)
                    bad = self._step(file, number, raw)
                    if bad is not None:
                        return bad
        except OSError as exc:
            return BadRecord(file, 0, None, f"cannot read the file: {exc.strerror or exc}")
        return None

    def _step(self, file: Path, number: int, raw: bytes) -> BadRecord | None:
        record, problem = _parse(raw)
        if record is None:
            return BadRecord(file, number, None, problem)
        seq: int = record["seq"]
        reason = self._check(record, seq)
        if reason is not None:
            return BadRecord(file, number, seq, reason)
        self._seq, self._hash = seq, record["hash"]
        self._count += 1
        self._missing_anchors.discard(self._hash)
        return None

    def _check(self, record: AuditRecord, seq: int) -> str | None:
        if record_hash(record) != record["hash"]:
            return "hash does not match its content (edited?)"
        if self._seq is None:
            return self._check_first(record, seq)
        if seq > self._seq + 1:
            missing = seq - self._seq - 1
            return f"seq jumps from {self._seq} to {seq}: {missing} record(s) missing here (deleted, or out of order)"
        if seq <= self._seq:
            return f"seq {seq} follows seq {self._seq}: record inserted, duplicated or out of order"
        if record["prev"] != self._hash:
            return (
                f"prev does not match the hash of record seq {self._seq}: this record was inserted, "
                "or the one before it was altered and re-hashed"
            )
        return self._check_head_hash(record, seq)

    def _check_first(self, record: AuditRecord, seq: int) -> str | None:
        if self._from_start and (seq != 1 or record["prev"] != ZERO_HASH):
            return (
                "the chain does not start here (expected seq 1 with prev 000…0): earlier records were deleted, "
                "or rotated files are missing (pass them first, oldest first)"
            )
        return self._check_head_hash(record, seq)

    def _check_head_hash(self, record: AuditRecord, seq: int) -> str | None:
        if self._head is not None and seq == self._head.seq and record["hash"] != self._head.hash:
            return f"hash differs from the one in {self._head_file}: the log was rewritten from here on"
        return None

    def finish(self, last_file: Path) -> BadRecord | None:
        file, line = self._position or (last_file, 0)
        last_seq = self._seq or 0
        if self._head is not None and self._head.seq > last_seq:
            return BadRecord(
                file,
                line + 1,
                last_seq + 1,
                f"missing: the log ends at seq {last_seq}, but {self._head_file} says seq {self._head.seq} "
                "was written (newest records deleted?)",
            )
        if self._missing_anchors:
            anchor = min(self._missing_anchors)
            return BadRecord(
                file,
                line + 1,
                None,
                f"hash {anchor[:16]}… (from an exported span) is not in the log: records were deleted or rewritten",
            )
        return None

    def result(self, bad: BadRecord | None) -> VerifyResult:
        return VerifyResult(
            ok=bad is None, records=self._count, first_bad=bad, last_seq=self._seq, last_hash=self._hash
        )


def _parse(raw: bytes) -> tuple[AuditRecord | None, str]:
    """The record on this line, or `None` and what is wrong with the line."""
    if not raw.endswith(b"\n"):
        return None, "the line is incomplete (torn write, or the file was cut)"
    if not raw.strip():
        return None, "empty line"
    try:
        record = parse_record(raw)
    except ValueError as exc:
        return None, f"not a valid JSON record ({exc})"
    if type(record.get("seq")) is not int or not isinstance(record.get("prev"), str):
        return None, "not an audit record (no integer seq or no prev)"
    if not isinstance(record.get("hash"), str):
        return None, "not an audit record (no hash)"
    return record, ""
