"""`mcp-firewall audit verify | tail | query` on a real log."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_firewall.audit import AuditLog
from mcp_firewall.cli import main


def _write_log(path: Path) -> None:
    with AuditLog.open(path, fsync="never") as log:
        log.record_decision(agent="bot", decision="allow", method="tools/call", tool="files__read", scope="reader")
        log.record_outcome(agent="bot", status="ok", duration_ms=1.5, method="tools/call", tool="files__read")
        log.record_decision(agent="bot", decision="deny", method="tools/call", tool="files__write", reason="nope")
        log.record_decision(agent="eve", decision="shadow-deny", method="tools/call", tool="files__rm", reason="x")


def test_verify_passes_on_an_intact_log_and_names_the_first_edited_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    assert main(["audit", "verify", str(log)]) == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"deny"', '"allow"')
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["audit", "verify", str(log)]) == 1
    assert "seq 3" in capsys.readouterr().out


def test_query_filters_by_agent_and_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    assert main(["audit", "query", str(log), "--decision", "deny"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "files__write" in out[0] and "nope" in out[0]
    assert main(["audit", "query", str(log), "--agent", "eve", "--since", "1h"]) == 0
    assert "files__rm" in capsys.readouterr().out


def test_tail_prints_the_newest_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    assert main(["audit", "tail", str(log), "-n", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_a_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["audit", "verify", str(tmp_path / "nope.jsonl")]) == 2
