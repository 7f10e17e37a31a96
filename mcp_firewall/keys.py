"""API keys for HTTP agents: generate, store only hashes, list, revoke, rotate (SPEC §5, §6).

A key is `mcpfw_` followed by 43 URL-safe characters (32 random bytes from `secrets`). The prefix lets
secret scanners recognise a leaked key. The key itself is shown once, by `mcp-firewall keys new`;
the keys file (`auth.keys`) keeps only its SHA-256, which is enough for a key of 256 random bits:
nothing can be guessed or precomputed, so a slow password hash would add cost and no safety.

The keys file, written only by `mcp-firewall keys` (atomically, mode 0600, under a lock):

    # mcp-firewall API keys: SHA-256 hashes only. Edit with `mcp-firewall keys`.
    version: 1
    keys:
    - label: support-bot-20260101-3f2a      # unique; what `keys revoke` takes
      agent: support-bot
      hash: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      hint: mcpfw_Xy3k                       # the key's first characters, to recognise it in a list
      created: '2026-01-01T09:30:00Z'
      expires: '2027-06-30'                  # optional: a date (valid through that day, UTC) or a date-time
      revoked: '2026-03-01T12:00:00Z'        # set by `keys revoke`; the record stays for the audit trail

Several keys may name the same agent: that is how keys rotate without downtime (`keys new` or
`keys rotate`, move the client over, then `keys revoke` the old one). The running firewall reloads
the file when it changes, so a revoked or expired key is refused at its next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mcp_firewall.errors import KeyFileError

__all__ = [
    "KEY_PREFIX",
    "KeyRecord",
    "KeyRing",
    "add_key",
    "generate_key",
    "hash_key",
    "parse_expires",
    "read_keys",
    "revoke_key",
    "rotate_key",
]

KEY_PREFIX = "mcpfw_"
KEY_BYTES = 32
FORMAT_VERSION = 1
HINT_LENGTH = len(KEY_PREFIX) + 4
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")
_KEY = re.compile(r"^mcpfw_[A-Za-z0-9_-]{43}$")
_HEADER = "# mcp-firewall API keys: SHA-256 hashes only, never the keys. Edit with `mcp-firewall keys`.\n"


def generate_key() -> str:
    """A new API key: the recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> bytes:
    """SHA-256 of the key (sufficient for a high-entropy key; see the module docstring)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def looks_like_key(text: str) -> bool:
    return _KEY.match(text) is not None


def parse_expires(value: Any) -> datetime:
    """`expires` as the first instant the key is refused: a date means the next midnight, UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return datetime.combine(value, datetime.min.time(), UTC) + timedelta(days=1)
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return parse_expires(date.fromisoformat(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a valid date") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 date-time") from None
    else:
        raise ValueError(f"expected a date or a date-time, found {type(value).__name__}")
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (add Z or +HH:MM)")
    return moment.astimezone(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KeyRecord:
    """One key as the keys file holds it: everything but the key."""

    label: str
    agent: str
    digest: bytes
    hint: str
    created: datetime
    expires: str | None = None  # as written: a date or a date-time
    revoked: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        return parse_expires(self.expires) if self.expires is not None else None

    def state(self, now: datetime) -> str:
        """`active`, `expired` or `revoked`."""
        if self.revoked is not None:
            return "revoked"
        expires_at = self.expires_at
        if expires_at is not None and now >= expires_at:
            return "expired"
        return "active"

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "agent": self.agent,
            "hash": "sha256:" + self.digest.hex(),
            "hint": self.hint,
            "created": _timestamp(self.created),
        }
        if self.expires is not None:
            data["expires"] = self.expires
        if self.revoked is not None:
            data["revoked"] = _timestamp(self.revoked)
        return data


def _record(item: Any, where: str) -> KeyRecord:
    if not isinstance(item, Mapping):
        raise KeyFileError(f"{where}: expected a mapping")
    unknown = set(item) - {"label", "agent", "hash", "hint", "created", "expires", "revoked"}
    if unknown:
        raise KeyFileError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    label, agent, digest = item.get("label"), item.get("agent"), item.get("hash")
    if not isinstance(label, str) or not _LABEL.match(label):
        raise KeyFileError(f"{where}: `label` must match {_LABEL.pattern}")
    if not isinstance(agent, str) or not _AGENT.match(agent):
        raise KeyFileError(f"{where}: `agent` must be an agent name")
    match = _HASH.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise KeyFileError(f"{where}: `hash` must be sha256:<64 hex digits>")
    try:
        created = parse_expires(str(item.get("created")))
        revoked = parse_expires(str(item["revoked"])) if item.get("revoked") is not None else None
        expires = str(item["expires"]) if item.get("expires") is not None else None
        if expires is not None:
            parse_expires(expires)
    except ValueError as exc:
        raise KeyFileError(f"{where}: {exc}") from None
    return KeyRecord(label, agent, bytes.fromhex(match.group(1)), str(item.get("hint", "")), created, expires, revoked)


def read_keys(path: str | os.PathLike[str]) -> list[KeyRecord]:
    """Every record in the keys file; a file that does not exist holds none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get("keys", []), list):
        raise KeyFileError(f"{path}: expected a mapping with a `keys` list")
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise KeyFileError(
            f"{path}: unsupported version {data.get('version')!r} (this firewall reads {FORMAT_VERSION})"
        )
    records = [_record(item, f"{path}: keys[{index}]") for index, item in enumerate(data.get("keys") or [])]
    labels = [r.label for r in records]
    if len(set(labels)) != len(labels):
        raise KeyFileError(f"{path}: labels must be unique")
    return records


def _write_keys(path: Path, records: list[KeyRecord]) -> None:
    body = yaml.safe_dump(
        {"version": FORMAT_VERSION, "keys": [r.to_yaml() for r in records]}, sort_keys=False, allow_unicode=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_HEADER + body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[KeyRecord]]:
    """Read the records under an exclusive lock (held while the caller writes them back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield read_keys(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _new_label(agent: str, now: datetime, taken: set[str]) -> str:
    while True:
        label = f"{agent}-{now:%Y%m%d}-{secrets.token_hex(2)}"
        if label not in taken:
            return label


def _new_record(
    records: list[KeyRecord], agent: str, label: str | None, expires: str | None, now: datetime
) -> tuple[str, KeyRecord]:
    if not _AGENT.match(agent):
        raise KeyFileError(f"{agent!r} is not an agent name")
    taken = {r.label for r in records}
    if label is None:
        label = _new_label(agent, now, taken)
    elif not _LABEL.match(label):
        raise KeyFileError(f"label {label!r} must match {_LABEL.pattern}")
    elif label in taken:
        raise KeyFileError(f"label {label!r} is already used (labels stay taken after revocation)")
    if expires is not None:
        try:
            if parse_expires(expires) <= now:
                raise KeyFileError(f"--expires {expires} is in the past")
        except ValueError as exc:
            raise KeyFileError(f"--expires: {exc}") from None
    key = generate_key()
    record = KeyRecord(label, agent, hash_key(key), key[:HINT_LENGTH], now.replace(microsecond=0), expires)
    return key, record


def add_key(
    path: str | os.PathLike[str],
    agent: str,
    *,
    label: str | None = None,
    expires: str | None = None,
    now: datetime | None = None,
) -> tuple[str, KeyRecord]:
    """Create a key for `agent`; return the key (to show once) and the record stored (its hash only)."""
    now = now or datetime.now(UTC)
    target = Path(path)
    with _locked(target) as records:
        key, record = _new_record(records, agent, label, expires, now)
        _write_keys(target, [*records, record])
    return key, record


def revoke_key(path: str | os.PathLike[str], label: str, *, now: datetime | None = None) -> KeyRecord:
    """Mark the key `label` revoked (refused from the running firewall's next request on)."""
    now = now or datetime.now(UTC)
    target = Path(path)
    with _locked(target) as records:
        index = next((i for i, r in enumerate(records) if r.label == label), None)
        if index is None:
            raise KeyFileError(f"no key labelled {label!r} in {path}")
        if records[index].revoked is None:
            records[index] = replace(records[index], revoked=now.replace(microsecond=0))
            _write_keys(target, records)
        return records[index]


def rotate_key(
    path: str | os.PathLike[str],
    label: str,
    *,
    overlap: timedelta,
    new_label: str | None = None,
    now: datetime | None = None,
) -> tuple[str, KeyRecord, KeyRecord]:
    """A new key for the agent of key `label`; the old one keeps working for `overlap`, then expires.

    Returns the new key, its record, and the old key's updated record.
    """
    now = now or datetime.now(UTC)
    target = Path(path)
    with _locked(target) as records:
        index = next((i for i, r in enumerate(records) if r.label == label), None)
        if index is None:
            raise KeyFileError(f"no key labelled {label!r} in {path}")
        old = records[index]
        if old.state(now) != "active":
            raise KeyFileError(f"key {label!r} is {old.state(now)}; create a fresh one with `keys new`")
        key, record = _new_record(records, old.agent, new_label, old.expires, now)
        ends = now.replace(microsecond=0) + overlap
        if old.expires_at is None or ends < old.expires_at:
            records[index] = old = replace(old, expires=_timestamp(ends))
        _write_keys(target, [*records, record])
    return key, record, old


# ---------------------------------------------------------------------------------------------- at run time


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class KeyRing:
    """The keys the running firewall accepts, reloaded whenever the keys file changes.

    `verify` looks a presented key up by its hash and confirms it with `hmac.compare_digest`; a key that
    is revoked or expired is refused. A file that becomes invalid leaves the last good keys in force
    (and is reported); a file that is deleted leaves none.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._by_digest: dict[bytes, KeyRecord] = {}
        self.generation = 0  # bumped on every reload, so that callers can re-check open streams

    def changed(self) -> bool:
        """Whether the file differs from what was loaded (one `stat`, no read)."""
        return _stamp(self.path) != self._stamp

    def load(self) -> None:
        """(Re)read the file; raises `KeyFileError` and keeps the previous keys when it is invalid."""
        stamp = _stamp(self.path)
        records = read_keys(self.path) if stamp is not None else []
        self._by_digest = {r.digest: r for r in records}
        self._stamp = stamp
        self.generation += 1

    def verify(self, key: str, now: datetime | None = None) -> KeyRecord | None:
        """The record of a valid, active key, or None."""
        if not looks_like_key(key):
            return None
        digest = hash_key(key)
        record = self._by_digest.get(digest)
        if record is None or not hmac.compare_digest(record.digest, digest):
            return None
        return record if record.state(now or datetime.now(UTC)) == "active" else None

    def is_active(self, label: str, now: datetime | None = None) -> bool:
        moment = now or datetime.now(UTC)
        return any(r.label == label and r.state(moment) == "active" for r in self._by_digest.values())
