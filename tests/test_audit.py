"""The audit log: hash chain, durability modes, tamper detection, and the readers for humans."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mcp_firewall.audit as audit
from mcp_firewall.audit import (
    ZERO_HASH,
    AuditLog,
    AuditWriteError,
    chain_files,
    count_shadow,
    format_record,
    head_path,
    query,
    read_head,
    read_records,
    summarize_shadow,
    tail,
    verify,
)
from mcp_firewall.errors import FirewallError

T0 = datetime(2026, 12, 4, 20, 31, 7, 123000, tzinfo=UTC).timestamp()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


class _Clock:
    """A clock the test moves: one second per record."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _decide(log: AuditLog, number: int = 0, **fields: Any) -> str:
    values: dict[str, Any] = {
        "agent": "support-bot",
        "session": "s-1",
        "method": "tools/call",
        "upstream": "files",
        "tool": f"files__tool_{number}",
        "decision": "allow",
        "scope": "support:read",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    values.update(fields)
    return log.record_decision(**values)


def _write_log(path: Path, count: int, **options: Any) -> list[str]:
    with AuditLog.open(path, clock=_Clock(), **options) as log:
        return [_decide(log, number) for number in range(count)]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _independent_hash(record: dict[str, Any]) -> str:
    """The SPEC's rule, written out again: SHA-256 of canonical JSON of the record without `hash`."""
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _forge(record: dict[str, Any]) -> str:
    """A line an attacker writes with a correctly recomputed hash."""
    forged = {key: value for key, value in record.items() if key != "hash"}
    forged["hash"] = _independent_hash(forged)
    return json.dumps(forged, ensure_ascii=False) + "\n"


def _bad(path: Path) -> tuple[str, int, int | None, str]:
    result = verify([path])
    assert not result.ok
    assert result.first_bad is not None
    file, line, seq, reason = result.first_bad
    return file.name, line, seq, reason


# -- the chain ----------------------------------------------------------------------------------------


def test_intact_chain_verifies(log_path: Path) -> None:
    hashes = _write_log(log_path, 5)

    result = verify([log_path])

    assert result.ok
    assert result.records == 5
    assert result.first_bad is None
    assert (result.last_seq, result.last_hash) == (5, hashes[-1])


def test_first_record_links_to_zero_hash_and_each_record_to_the_one_before(log_path: Path) -> None:
    hashes = _write_log(log_path, 3)

    records = list(read_records(log_path))

    assert [record["seq"] for record in records] == [1, 2, 3]
    assert [record["prev"] for record in records] == [ZERO_HASH, hashes[0], hashes[1]]
    assert [record["hash"] for record in records] == hashes


def test_hash_is_sha256_of_canonical_json_without_the_hash_key(log_path: Path) -> None:
    with AuditLog.open(log_path) as log:
        returned = _decide(log, reason="chemin « /etc » refusé ✓", args={"path": "/etc", "n": [1, 2.5, None]})

    (record,) = read_records(log_path)

    assert record["hash"] == returned == _independent_hash(record)
    assert "« /etc »" in log_path.read_text(encoding="utf-8")  # no ASCII escaping


def test_decision_record_has_spec_fields_and_omits_none(log_path: Path) -> None:
    with AuditLog.open(log_path, clock=lambda: T0) as log:
        log.record_decision(
            agent="support-bot",
            session="s-1",
            method="tools/call",
            tool="files__write_file",
            upstream="files",
            decision="deny",
            reason="path '/etc' is not within /srv/docs",
        )

    (record,) = read_records(log_path)

    assert record == {
        "ts": "2026-12-04T20:31:07.123Z",
        "seq": 1,
        "kind": "decision",
        "agent": "support-bot",
        "session": "s-1",
        "method": "tools/call",
        "upstream": "files",
        "tool": "files__write_file",
        "decision": "deny",
        "reason": "path '/etc' is not within /srv/docs",
        "prev": ZERO_HASH,
        "hash": record["hash"],
    }


def test_outcome_record_adds_status_and_duration(log_path: Path) -> None:
    with AuditLog.open(log_path) as log:
        log.record_outcome(agent="a", tool="files__read", status="error", duration_ms=12.5, trace_id="t")

    (record,) = read_records(log_path)

    assert (record["kind"], record["status"], record["duration_ms"], record["trace_id"]) == (
        "outcome",
        "error",
        12.5,
        "t",
    )
    assert "args" not in record and "decision" not in record


def test_args_are_recorded_only_when_given(log_path: Path) -> None:
    with AuditLog.open(log_path) as log:
        _decide(log)
        _decide(log, args={"path": "[REDACTED]"})

    first, second = read_records(log_path)

    assert "args" not in first
    assert second["args"] == {"path": "[REDACTED]"}


def test_extra_fields_are_recorded_but_cannot_replace_chain_fields(log_path: Path) -> None:
    with AuditLog.open(log_path) as log:
        _decide(log, request_id=7)
        with pytest.raises(ValueError, match="seq"):
            _decide(log, seq=99)

    (record,) = read_records(log_path)
    assert record["request_id"] == 7


def test_timestamps_are_utc_with_milliseconds(log_path: Path) -> None:
    moments = iter([T0, T0 + 0.0004, T0 + 59.9999])
    with AuditLog.open(log_path, clock=lambda: next(moments)) as log:
        for _ in range(3):
            _decide(log)

    assert [record["ts"] for record in read_records(log_path)] == [
        "2026-12-04T20:31:07.123Z",
        "2026-12-04T20:31:07.123Z",
        "2026-12-04T20:32:07.122Z",
    ]


def test_record_is_in_the_file_when_record_decision_returns(log_path: Path) -> None:
    log = AuditLog.open(log_path, fsync="never")

    digest = _decide(log)

    assert json.loads(log_path.read_text(encoding="utf-8"))["hash"] == digest
    log.close()


def test_reopening_an_existing_log_continues_seq_and_prev(log_path: Path) -> None:
    first = _write_log(log_path, 2)

    with AuditLog.open(log_path) as log:
        assert (log.seq, log.last_hash) == (2, first[-1])
        _decide(log)

    records = list(read_records(log_path))
    assert (records[2]["seq"], records[2]["prev"]) == (3, first[-1])
    assert verify([log_path]).ok


# -- rotation -----------------------------------------------------------------------------------------


def test_rotation_continues_the_chain_and_verifies_across_files(log_path: Path) -> None:
    hashes = _write_log(log_path, 12, max_bytes=1200)

    files = chain_files(log_path)

    assert len(files) > 2
    assert files[-1] == log_path
    assert all(file.stat().st_size <= 1200 for file in files)
    first_of_current = next(iter(read_records(log_path)))
    assert first_of_current["prev"] == hashes[first_of_current["seq"] - 2]
    result = verify(files)
    assert (result.ok, result.records, result.last_hash) == (True, 12, hashes[-1])


def test_chain_files_orders_rotated_files_numerically(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    for name in ["audit.jsonl", "audit.jsonl.10", "audit.jsonl.9", "audit.jsonl.head", "audit.jsonl.x", "other.1"]:
        (tmp_path / name).write_text("", encoding="utf-8")

    assert [file.name for file in chain_files(log)] == ["audit.jsonl.9", "audit.jsonl.10", "audit.jsonl"]


def test_verifying_only_the_current_file_after_rotation_says_earlier_files_are_missing(log_path: Path) -> None:
    _write_log(log_path, 12, max_bytes=1200)

    file, line, _, reason = _bad(log_path)

    assert (file, line) == ("audit.jsonl", 1)
    assert "rotated files are missing" in reason
    assert verify([log_path], from_start=False).ok


def test_reopening_after_a_crash_between_rename_and_new_file_continues_from_the_rotated_file(log_path: Path) -> None:
    hashes = _write_log(log_path, 3)
    log_path.rename(log_path.with_name("audit.jsonl.1"))

    with AuditLog.open(log_path) as log:
        _decide(log)

    records = list(read_records(log_path))
    assert (records[0]["seq"], records[0]["prev"]) == (4, hashes[-1])
    assert verify(chain_files(log_path)).ok


def test_reopening_resumes_rotation_numbering(log_path: Path) -> None:
    _write_log(log_path, 6, max_bytes=600)
    before = [file.name for file in chain_files(log_path)]

    _write_log(log_path, 6, max_bytes=600)

    after = [file.name for file in chain_files(log_path)]
    assert after[: len(before) - 1] == before[:-1]
    assert verify(chain_files(log_path)).ok


def test_two_writers_on_one_log_keep_a_single_chain(log_path: Path) -> None:
    first, second = AuditLog.open(log_path, fsync="never"), AuditLog.open(log_path, fsync="never")

    for number in range(3):
        _decide(first, number, agent="a")
        _decide(second, number, agent="b")
    first.close()
    second.close()

    assert [r["agent"] for r in read_records(log_path)] == ["a", "b"] * 3
    assert verify([log_path]).ok


@pytest.mark.parametrize("max_bytes", [None, 2000])
def test_concurrent_writers_with_rotation_keep_a_single_chain(log_path: Path, max_bytes: int | None) -> None:
    logs = [AuditLog.open(log_path, fsync="never", max_bytes=max_bytes) for _ in range(3)]

    def write(log: AuditLog) -> None:
        for number in range(60):
            _decide(log, number)

    threads = [threading.Thread(target=write, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    for log in logs:
        log.close()

    result = verify(chain_files(log_path))
    assert (result.ok, result.records) == (True, 180), result.first_bad
    head = read_head(head_path(log_path))
    assert head is not None and head.seq == 180


# -- tampering ----------------------------------------------------------------------------------------


def test_edited_field_is_detected_at_the_edited_record(log_path: Path) -> None:
    _write_log(log_path, 5)
    lines = _lines(log_path)
    lines[2] = lines[2].replace('"decision":"allow"', '"decision":"deny"')
    log_path.write_text("".join(lines), encoding="utf-8")

    result = verify([log_path])

    assert str(result.first_bad) == "record seq 3 at " + str(log_path) + ":3: hash does not match its content (edited?)"
    assert result.records == 2


def test_deleted_middle_record_is_detected_where_it_is_missing(log_path: Path) -> None:
    _write_log(log_path, 5)
    lines = _lines(log_path)
    del lines[2]
    log_path.write_text("".join(lines), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 3, 4)
    assert "seq jumps from 2 to 4" in reason


def test_inserted_record_with_recomputed_hash_but_wrong_prev_is_detected(log_path: Path) -> None:
    _write_log(log_path, 4)
    lines = _lines(log_path)
    forged = json.loads(lines[1]) | {"seq": 3, "prev": "f" * 64, "decision": "allow", "tool": "files__rm"}
    lines.insert(2, _forge(forged))
    log_path.write_text("".join(lines), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 3, 3)
    assert reason.startswith("prev does not match the hash of record seq 2")


def test_inserted_record_that_links_correctly_is_detected_at_the_displaced_record(log_path: Path) -> None:
    hashes = _write_log(log_path, 4)
    lines = _lines(log_path)
    forged = json.loads(lines[2]) | {"prev": hashes[1], "tool": "files__rm"}
    lines.insert(2, _forge(forged))
    log_path.write_text("".join(lines), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 4, 3)
    assert "inserted" in reason


def test_swapped_records_are_detected(log_path: Path) -> None:
    _write_log(log_path, 5)
    lines = _lines(log_path)
    lines[1], lines[2] = lines[2], lines[1]
    log_path.write_text("".join(lines), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 2, 3)
    assert "out of order" in reason


def test_deleted_first_records_are_detected(log_path: Path) -> None:
    _write_log(log_path, 4)
    log_path.write_text("".join(_lines(log_path)[2:]), encoding="utf-8")

    assert _bad(log_path)[:3] == ("audit.jsonl", 1, 3)


def test_truncated_tail_is_detected_against_the_head_file(log_path: Path) -> None:
    _write_log(log_path, 5)
    log_path.write_text("".join(_lines(log_path)[:3]), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 4, 4)
    assert "ends at seq 3" in reason and "says seq 5 was written" in reason
    assert verify([log_path], head=None).ok


def test_rewritten_tail_is_detected_against_the_head_file(log_path: Path) -> None:
    _write_log(log_path, 5)
    lines = _lines(log_path)[:3]
    previous = json.loads(lines[-1])
    for forged_seq in (4, 5):
        forged = previous | {"seq": forged_seq, "prev": previous["hash"], "tool": "files__innocent"}
        lines.append(_forge(forged))
        previous = json.loads(lines[-1])
    log_path.write_text("".join(lines), encoding="utf-8")

    file, line, seq, reason = _bad(log_path)

    assert (file, line, seq) == ("audit.jsonl", 5, 5)
    assert "differs from the one in" in reason


def test_deleted_rotated_file_is_detected(log_path: Path) -> None:
    _write_log(log_path, 12, max_bytes=1200)
    files = chain_files(log_path)

    result = verify([files[0], *files[2:]])

    assert result.first_bad is not None
    assert result.first_bad.file == files[2]
    assert "seq jumps" in result.first_bad.reason


def test_hash_from_an_exported_span_that_is_not_in_the_log_is_detected(log_path: Path) -> None:
    hashes = _write_log(log_path, 3)

    assert verify([log_path], anchors=hashes[:2]).ok
    result = verify([log_path], anchors=["ab" * 32])
    assert result.first_bad is not None
    assert "from an exported span" in result.first_bad.reason


@settings(max_examples=40, deadline=None)
@given(count=st.integers(min_value=1, max_value=12), data=st.data())
def test_deleting_any_record_is_detected_at_its_position(count: int, data: st.DataObject) -> None:
    removed = data.draw(st.integers(min_value=0, max_value=count - 1))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        _write_log(path, count, fsync="never")
        lines = _lines(path)
        del lines[removed]
        path.write_text("".join(lines), encoding="utf-8")

        result = verify([path])

    assert result.first_bad is not None
    assert result.first_bad.line == removed + 1
    assert result.records == removed


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json\n", "not a valid JSON record"),
        ('{"seq":1,"seq":1,"prev":"0","hash":"0"}\n', "duplicate keys"),
        ("\n", "empty line"),
        ('{"seq":1}\n', "not an audit record"),
        ('{"seq":1,"prev":"x","hash"', "incomplete"),
    ],
)
def test_malformed_lines_are_named(log_path: Path, line: str, reason: str) -> None:
    _write_log(log_path, 1)
    log_path.write_text(log_path.read_text(encoding="utf-8") + line, encoding="utf-8")

    file, number, _, found = _bad(log_path)

    assert (file, number) == ("audit.jsonl", 2)
    assert reason in found


def test_unreadable_head_file_is_reported(log_path: Path) -> None:
    _write_log(log_path, 2)
    head_path(log_path).write_text("{not json", encoding="utf-8")

    result = verify([log_path])

    assert result.first_bad is not None
    assert result.first_bad.file == head_path(log_path)
    assert "head file cannot be read" in result.first_bad.reason


# -- resuming refuses a log that disagrees with its head --------------------------------------------


def test_opening_refuses_a_log_shorter_than_its_head(log_path: Path) -> None:
    _write_log(log_path, 3)
    log_path.write_text("".join(_lines(log_path)[:2]), encoding="utf-8")

    with pytest.raises(AuditWriteError, match="truncated"):
        AuditLog.open(log_path)


def test_opening_refuses_a_log_whose_last_record_differs_from_its_head(log_path: Path) -> None:
    _write_log(log_path, 3)
    lines = _lines(log_path)
    lines[-1] = _forge(json.loads(lines[-1]) | {"tool": "other"})
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditWriteError, match="does not match"):
        AuditLog.open(log_path)


def test_opening_refuses_a_head_without_a_log(log_path: Path) -> None:
    _write_log(log_path, 1)
    log_path.unlink()

    with pytest.raises(AuditWriteError, match="no records"):
        AuditLog.open(log_path)


def test_opening_refuses_a_torn_last_line(log_path: Path) -> None:
    _write_log(log_path, 2, fsync="never")
    head_path(log_path).unlink()
    log_path.write_text(log_path.read_text(encoding="utf-8")[:-20], encoding="utf-8")

    with pytest.raises(AuditWriteError, match="incomplete"):
        AuditLog.open(log_path)


def test_opening_accepts_records_written_after_the_last_head_update(log_path: Path) -> None:
    hashes = _write_log(log_path, 3)
    stale = {"seq": 2, "hash": hashes[1], "file": "audit.jsonl"}  # the crash came before the head caught up
    head_path(log_path).write_text(json.dumps(stale), encoding="utf-8")

    with AuditLog.open(log_path) as log:
        assert (log.seq, log.last_hash) == (3, hashes[2])
        _decide(log)

    assert verify([log_path]).ok


# -- durability -----------------------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inode of every file fsynced."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_fsync_always_syncs_every_record_and_rewrites_the_head(log_path: Path, fsyncs: list[int]) -> None:
    log = AuditLog.open(log_path, fsync="always")
    _decide(log)
    log.record_outcome(agent="a", status="ok", duration_ms=1.0)

    inode = log_path.stat().st_ino
    assert fsyncs.count(inode) == 2
    head = read_head(head_path(log_path))
    assert head is not None and (head.seq, head.hash, head.file) == (2, log.last_hash, "audit.jsonl")
    log.close()


def test_fsync_batch_syncs_nothing_on_the_write_path_and_syncs_on_close(log_path: Path, fsyncs: list[int]) -> None:
    log = AuditLog.open(log_path, fsync="batch")
    for number in range(3):
        _decide(log, number)
    assert fsyncs == []
    assert read_head(head_path(log_path)) is None

    log.close()

    assert fsyncs.count(log_path.stat().st_ino) == 1
    head = read_head(head_path(log_path))
    assert head is not None and head.seq == 3


def test_fsync_never_syncs_nothing_and_writes_the_head_on_close(log_path: Path, fsyncs: list[int]) -> None:
    log = AuditLog.open(log_path, fsync="never")
    _decide(log)
    assert read_head(head_path(log_path)) is None

    log.close()

    assert fsyncs == []
    head = read_head(head_path(log_path))
    assert head is not None and head.seq == 1


def test_fsync_never_writes_the_head_on_rotation(log_path: Path, fsyncs: list[int]) -> None:
    with AuditLog.open(log_path, fsync="never", max_bytes=600) as log:
        for number in range(4):
            _decide(log, number)
        head = read_head(head_path(log_path))
        assert head is not None and head.file.startswith("audit.jsonl.")
    assert fsyncs == []


@pytest.mark.anyio
async def test_batch_syncer_syncs_in_the_background_and_once_more_when_cancelled(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = threading.Event()
    real = os.fsync

    def signalling(fd: int) -> None:
        real(fd)
        synced.set()

    monkeypatch.setattr(os, "fsync", signalling)
    log = AuditLog.open(log_path, fsync="batch")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run_syncer, 0.001)
            _decide(log)
            assert await anyio.to_thread.run_sync(synced.wait, 5)
            _decide(log)
            tg.cancel_scope.cancel()

    head = read_head(head_path(log_path))
    assert head is not None and head.seq == 2
    log.close()


@pytest.mark.anyio
async def test_syncer_returns_at_once_unless_batch(log_path: Path) -> None:
    with AuditLog.open(log_path, fsync="always") as log, anyio.fail_after(5):
        await log.run_syncer()


# -- failures -------------------------------------------------------------------------------------------


def test_audit_write_error_is_a_firewall_error() -> None:
    assert issubclass(AuditWriteError, FirewallError)


def test_write_failure_raises_audit_write_error_and_does_not_advance_the_chain(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog.open(log_path)
    _decide(log)
    real_write = os.write

    def failing(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(AuditWriteError, match="No space left on device"):
        _decide(log)
    monkeypatch.setattr(os, "write", real_write)

    _decide(log)
    log.close()
    assert [record["seq"] for record in read_records(log_path)] == [1, 2]
    assert verify([log_path]).ok


def test_short_write_is_rolled_back(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog.open(log_path)
    _decide(log)
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[:10])

    monkeypatch.setattr(os, "write", short)
    with pytest.raises(AuditWriteError, match="short write"):
        _decide(log)
    monkeypatch.setattr(os, "write", real_write)

    _decide(log)
    log.close()
    assert verify([log_path]).ok


def test_fsync_failure_refuses_every_later_record(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog.open(log_path, fsync="always")

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(AuditWriteError, match="Input/output error"):
        _decide(log)
    monkeypatch.undo()

    with pytest.raises(AuditWriteError, match="unusable"):
        _decide(log)
    log.close()


def test_unwritable_directory_raises_audit_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")

    with pytest.raises(AuditWriteError, match="cannot open audit log"):
        AuditLog.open(blocker / "audit.jsonl")


def test_unserialisable_record_raises_audit_write_error(log_path: Path) -> None:
    with AuditLog.open(log_path) as log:
        with pytest.raises(AuditWriteError, match="serialised"):
            _decide(log, args={"x": object()})
        with pytest.raises(AuditWriteError, match="serialised"):
            _decide(log, reason="lone \ud800 surrogate")
        _decide(log)
    assert verify([log_path]).ok


def test_closed_log_refuses_records(log_path: Path) -> None:
    log = AuditLog.open(log_path)
    log.close()
    log.close()

    with pytest.raises(AuditWriteError, match="closed"):
        _decide(log)


def test_open_rejects_unknown_fsync_mode(log_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        AuditLog.open(log_path, fsync="sometimes")  # type: ignore[arg-type]  # the point of the test


# -- readers for humans -------------------------------------------------------------------------------


def _mixed_log(path: Path) -> None:
    with AuditLog.open(path, clock=_Clock()) as log:
        _decide(log, 1, agent="support-bot", decision="allow")
        log.record_outcome(agent="support-bot", tool="files__tool_1", status="ok", duration_ms=3.25)
        _decide(log, 2, agent="support-bot", decision="deny", reason="path '/etc' is not within /srv/docs")
        _decide(log, 3, agent="researcher", decision="hidden", reason="not granted")
        _decide(log, 4, agent="researcher", decision="shadow-deny", reason="path outside /srv")
        _decide(log, 4, agent="researcher", decision="shadow-deny", reason="path outside /srv")
        _decide(log, 5, agent="support-bot", decision="shadow-deny", reason="write not granted")


def test_query_filters_by_agent_and_decision(log_path: Path) -> None:
    _mixed_log(log_path)

    assert [r["seq"] for r in query([log_path], agent="support-bot")] == [1, 2, 3, 7]
    assert [r["seq"] for r in query([log_path], decision="shadow-deny")] == [5, 6, 7]
    assert [r["seq"] for r in query([log_path], agent="researcher", decision="hidden")] == [4]
    assert [r["seq"] for r in query([log_path], kind="outcome")] == [2]


def test_query_filters_by_time_window(log_path: Path) -> None:
    _mixed_log(log_path)
    start = datetime.fromtimestamp(T0, UTC)

    assert [r["seq"] for r in query([log_path], since=start + timedelta(seconds=3))] == [3, 4, 5, 6, 7]
    assert [r["seq"] for r in query([log_path], until=start + timedelta(seconds=3))] == [1, 2]
    naive = (start + timedelta(seconds=6)).replace(tzinfo=None)
    assert [r["seq"] for r in query([log_path], since=naive)] == [6, 7]


def test_query_reads_files_in_the_order_given(log_path: Path) -> None:
    _write_log(log_path, 12, max_bytes=1200)

    assert [r["seq"] for r in query(chain_files(log_path))] == list(range(1, 13))


def test_tail_returns_the_last_records_reaching_into_rotated_files(log_path: Path) -> None:
    _write_log(log_path, 12, max_bytes=1200)

    assert [r["seq"] for r in tail(log_path, n=7)] == [6, 7, 8, 9, 10, 11, 12]
    assert [r["seq"] for r in tail(log_path, n=50)] == list(range(1, 13))


def test_tail_follows_new_records_across_rotation(log_path: Path) -> None:
    log = AuditLog.open(log_path, max_bytes=700)
    _decide(log, 1)
    _decide(log, 2)
    follower = tail(log_path, n=1, follow=True, poll_interval=0.001)
    assert next(follower)["seq"] == 2

    _decide(log, 3)
    assert next(follower)["seq"] == 3
    _decide(log, 4)  # rotates: log_path is now a new file
    _decide(log, 5)
    assert len(chain_files(log_path)) > 1
    assert [next(follower)["seq"], next(follower)["seq"]] == [4, 5]
    follower.close()
    log.close()


def test_tail_of_a_large_file_follows_without_repeating_records(log_path: Path) -> None:
    log = AuditLog.open(log_path)
    for number in range(200):
        _decide(log, number)
    follower = tail(log_path, n=3, follow=True, poll_interval=0.001)

    assert [next(follower)["seq"] for _ in range(3)] == [198, 199, 200]
    _decide(log, 201)
    assert next(follower)["seq"] == 201
    follower.close()
    log.close()


def test_tail_leaves_a_record_being_written_for_follow_to_read_whole(log_path: Path) -> None:
    _write_log(log_path, 2, fsync="never")
    with AuditLog.open(log_path) as log:
        _decide(log)
    complete = _lines(log_path)
    log_path.write_text("".join(complete[:2]) + complete[2][:30], encoding="utf-8")
    follower = tail(log_path, n=5, follow=True, poll_interval=0.001)

    assert [next(follower)["seq"] for _ in range(2)] == [1, 2]
    with log_path.open("a", encoding="utf-8") as stream:
        stream.write(complete[2][30:])
    assert next(follower)["seq"] == 3
    follower.close()


def test_format_record_is_one_readable_line(log_path: Path) -> None:
    record = {
        "ts": "2026-12-04T20:31:07.123Z",
        "kind": "decision",
        "agent": "support-bot",
        "method": "tools/call",
        "tool": "files__write_file",
        "decision": "deny",
        "reason": "path '/etc' is not within /srv/docs",
    }

    line = format_record(record)

    assert (
        line
        == "2026-12-04T20:31:07Z  deny   support-bot  tools/call files__write_file  path '/etc' is not within /srv/docs"
    )


def test_format_record_shows_outcomes_and_allow_scopes() -> None:
    outcome = {
        "ts": "2026-12-04T20:31:07.123Z",
        "kind": "outcome",
        "agent": "a",
        "method": "tools/call",
        "tool": "t",
        "status": "ok",
        "duration_ms": 3.25,
    }
    allow = {
        "ts": "2026-12-04T20:31:07.123Z",
        "kind": "decision",
        "agent": "a",
        "method": "resources/read",
        "uri": "file:///srv/docs/a.md",
        "decision": "allow",
        "scope": "docs:read",
    }

    assert format_record(outcome) == "2026-12-04T20:31:07Z  ok     a  tools/call t  3.25 ms"
    assert (
        format_record(allow) == "2026-12-04T20:31:07Z  allow  a  resources/read file:///srv/docs/a.md  scope docs:read"
    )


def test_format_record_escapes_characters_that_could_forge_lines() -> None:
    record = {"ts": "x", "decision": "deny", "agent": "a", "reason": "ok\n2026-01-01T00:00:00Z  allow \u202eevil"}

    line = format_record(record)

    assert "\n" not in line and "\u202e" not in line
    assert "\\u000a" in line and "\\u202e" in line


def test_summarize_shadow_counts_what_would_break(log_path: Path) -> None:
    _mixed_log(log_path)
    records = list(read_records(log_path))

    assert count_shadow(records)[("researcher", "files__tool_4", "path outside /srv")] == 2
    assert summarize_shadow(records).splitlines() == [
        "count  agent        tool           reason",
        "    2  researcher   files__tool_4  path outside /srv",
        "    1  support-bot  files__tool_5  write not granted",
    ]
    assert summarize_shadow([]) == "no shadow-deny decisions"


def test_read_records_names_the_bad_line(log_path: Path) -> None:
    _write_log(log_path, 1)
    log_path.write_text(log_path.read_text(encoding="utf-8") + "oops\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"audit\.jsonl:2"):
        list(read_records(log_path))


def test_public_api_is_exported() -> None:
    for name in audit.__all__:
        assert getattr(audit, name) is not None
