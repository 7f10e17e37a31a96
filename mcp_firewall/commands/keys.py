"""`mcp-firewall keys new | list | revoke | rotate`: API keys for agents that connect over HTTP.

`new` and `rotate` print the key alone on stdout, once; everything else goes to stderr. The keys file
is `auth.keys` of the firewall file (or `--keys FILE`). `list` and `revoke` work even when the scope
files do not validate, so that a leaked key can always be revoked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mcp_firewall.commands.common import UsageError, add_config_argument, load_config, load_policy_of
from mcp_firewall.errors import ConfigError, KeyFileError
from mcp_firewall.keys import add_key, read_keys, revoke_key, rotate_key

__all__ = ["register"]


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys for agents over HTTP: new, list, revoke, rotate")
    actions = keys.add_subparsers(title="keys commands", required=True, metavar="ACTION")

    new = actions.add_parser("new", help="create a key for an agent; prints the key alone on stdout, once")
    _common(new)
    new.add_argument("--agent", required=True, help="the agent the key proves")
    new.add_argument("--label", help="a unique name for the key (default: AGENT-YYYYMMDD-xxxx)")
    new.add_argument("--expires", help="a date (valid through that day, UTC) or an ISO 8601 date-time with a zone")
    new.set_defaults(command=_new)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    _common(listing)
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(command=_list)

    revoke = actions.add_parser("revoke", help="revoke a key; refused from the firewall's next request on")
    _common(revoke)
    revoke.add_argument("label")
    revoke.set_defaults(command=_revoke)

    rotate = actions.add_parser("rotate", help="a new key for the same agent; the old one expires after --overlap")
    _common(rotate)
    rotate.add_argument("label", help="the key being replaced")
    rotate.add_argument("--overlap", default="24h", help="how long the old key keeps working (e.g. 30m, 24h, 7d)")
    rotate.add_argument("--new-label", help="the new key's label")
    rotate.set_defaults(command=_rotate)


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--keys", help="the keys file (default: auth.keys of the firewall file)")


def _keys_path(args: argparse.Namespace) -> Path:
    if args.keys:
        return Path(args.keys)
    try:
        config = load_config(args.config)
    except ConfigError:
        return _keys_path_leniently(Path(args.config))
    if config.firewall.auth is None or config.firewall.auth.keys is None:
        raise UsageError(f"{args.config} has no `auth.keys`: add `auth: {{keys: keys.yaml}}` or pass --keys FILE")
    return Path(config.firewall.auth.keys)


def _keys_path_leniently(config_path: Path) -> Path:
    """`auth.keys` read straight from the YAML, for when the scope files do not validate."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        keys = data["auth"]["keys"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise UsageError(f"cannot find `auth.keys` in {config_path}; pass --keys FILE") from None
    if not isinstance(keys, str):
        raise UsageError(f"`auth.keys` in {config_path} is not a path; pass --keys FILE")
    return (config_path.parent / keys).resolve()


def _check_agent(args: argparse.Namespace) -> None:
    """Refuse a key for an agent that the scope files do not define (a typo would make a useless key)."""
    if args.keys and not Path(args.config).exists():
        return
    try:
        policy = load_policy_of(load_config(args.config))
    except ConfigError as exc:
        raise UsageError(
            f"cannot check that agent {args.agent!r} exists: the configuration is invalid\n{exc}"
        ) from None
    if args.agent not in policy.agents:
        raise UsageError(f"unknown agent {args.agent!r}: it is not defined under `agents:` in any scope file")


def _new(args: argparse.Namespace) -> int:
    path = _keys_path(args)
    _check_agent(args)
    try:
        key, record = add_key(path, args.agent, label=args.label, expires=args.expires)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    print(key, flush=True)
    print(f"key {record.label} for agent {record.agent} stored in {path} (only its hash)", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    records = read_keys(_keys_path(args))
    now = datetime.now(UTC)
    rows = [
        {
            "label": r.label,
            "agent": r.agent,
            "state": r.state(now),
            "hint": r.hint + "…",
            "created": r.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires": r.expires or "",
            "revoked": r.revoked.strftime("%Y-%m-%dT%H:%M:%SZ") if r.revoked else "",
        }
        for r in records
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    columns = ["label", "agent", "state", "hint", "created", "expires", "revoked"]
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = _keys_path(args)
    try:
        record = revoke_key(path, args.label)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    print(f"key {record.label} of agent {record.agent} revoked", file=sys.stderr)
    return 0


_DURATION = re.compile(r"^(\d+)([smhd])$")


def _rotate(args: argparse.Namespace) -> int:
    match = _DURATION.match(args.overlap)
    if match is None:
        raise UsageError(f"--overlap {args.overlap!r}: expected a duration such as 30m, 24h or 7d")
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    overlap = timedelta(**{units[match.group(2)]: int(match.group(1))})
    path = _keys_path(args)
    try:
        key, record, old = rotate_key(path, args.label, overlap=overlap, new_label=args.new_label)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    print(key, flush=True)
    print(f"key {record.label} for agent {record.agent} stored; {old.label} expires {old.expires}", file=sys.stderr)
    return 0
