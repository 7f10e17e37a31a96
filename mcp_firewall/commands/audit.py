"""`mcp-firewall audit verify | tail | query`: the audit log for auditors and on-call humans."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_firewall.audit import chain_files, format_record, query, summarize_shadow, tail, verify
from mcp_firewall.commands.common import UsageError

__all__ = ["register"]


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="verify and read the audit log")
    actions = audit.add_subparsers(title="audit commands", required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="check the hash chain; names the first bad record")
    check.add_argument("files", nargs="+", help="the log (its rotated files are found beside it), or files in order")
    check.add_argument("--partial", action="store_true", help="the oldest files were removed: do not require seq 1")
    check.set_defaults(command=_verify)

    recent = actions.add_parser("tail", help="the newest records, one line each")
    recent.add_argument("file")
    recent.add_argument("-n", type=int, default=20, help="how many (default 20)")
    recent.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    recent.set_defaults(command=_tail)

    find = actions.add_parser("query", help="records matching filters")
    find.add_argument("file")
    find.add_argument("--agent")
    find.add_argument("--decision", help="allow, deny, hidden or shadow-deny")
    find.add_argument("--since", help="an ISO date-time (UTC if no zone) or a duration such as 15m, 2h, 7d")
    find.add_argument("--summary", action="store_true", help="with --decision shadow-deny: what would break")
    find.set_defaults(command=_query)


def _files(arguments: list[str]) -> list[Path]:
    if len(arguments) == 1:
        return chain_files(Path(arguments[0])) or [Path(arguments[0])]
    return [Path(argument) for argument in arguments]


def _verify(args: argparse.Namespace) -> int:
    files = _files(args.files)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise UsageError(f"no audit log at {', '.join(missing)}")
    result = verify(files, from_start=not args.partial)
    if result.ok:
        print(f"intact: {result.records} records, last seq {result.last_seq}", file=sys.stderr)
        return 0
    print(f"TAMPERED: {result.first_bad}")
    return 1


def _tail(args: argparse.Namespace) -> int:
    try:
        for record in tail(args.file, args.n, follow=args.follow):
            print(format_record(record), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO date-time or a duration such as 15m, 2h, 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _query(args: argparse.Namespace) -> int:
    records = query(_files([args.file]), agent=args.agent, decision=args.decision, since=_since(args.since))
    if args.summary:
        print(summarize_shadow(records))
        return 0
    for record in records:
        print(format_record(record))
    return 0
