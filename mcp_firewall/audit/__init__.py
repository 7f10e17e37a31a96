"""Tamper-evident audit log: hash-chained JSON Lines, written before a call is forwarded.

    AuditLog.open(path, fsync=..., max_bytes=...)   the writer (record_decision, record_outcome, run_syncer)
    verify(chain_files(path))                       checks every hash, link and seq; names the first bad record
    tail / query / format_record / summarize_shadow  reading it for humans

See docs/audit.md for the record format and what each durability mode guarantees.
"""

from __future__ import annotations

from mcp_firewall.audit._chain import (
    ZERO_HASH,
    AuditRecord,
    ChainHead,
    canonical_json,
    chain_files,
    head_path,
    read_head,
    record_hash,
)
from mcp_firewall.audit.query import count_shadow, format_record, query, read_records, summarize_shadow, tail
from mcp_firewall.audit.verify import BadRecord, VerifyResult, verify
from mcp_firewall.audit.writer import SYNC_INTERVAL_S, AuditLog, FsyncMode
from mcp_firewall.errors import AuditWriteError

__all__ = [
    "SYNC_INTERVAL_S",
    "ZERO_HASH",
    "AuditLog",
    "AuditRecord",
    "AuditWriteError",
    "BadRecord",
    "ChainHead",
    "FsyncMode",
    "VerifyResult",
    "canonical_json",
    "chain_files",
    "count_shadow",
    "format_record",
    "head_path",
    "query",
    "read_head",
    "read_records",
    "record_hash",
    "summarize_shadow",
    "tail",
    "verify",
]
