"""Keeping secrets out of spans and audit records.

Two rules, applied wherever an argument value could be recorded:
- a value under a key that contains one of the configured `redact_keys` (case-insensitive substring,
  so `password` catches `db_password` and `X-Password`) is replaced whole, whatever its type;
- in every other string, anything shaped like a credential (bearer tokens, JWTs, well-known API-key
  formats, private keys, URL passwords, `key=value` secrets, long random-looking tokens) is replaced.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from mcp_firewall.config.model import DEFAULT_REDACT_KEYS

__all__ = ["REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"
_MAX_DEPTH: Final = 32
_KEY_CACHE_LIMIT: Final = 4096
_MIN_ECHOED_SECRET: Final = 4

# Whole matches are replaced; `(?P<keep>...)` groups are kept in front of the replacement.
_CREDENTIAL_PATTERNS: Final = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"(?P<keep1>\b(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}",
    r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # JWT (header is base64url JSON)
    r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic and alike
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",  # GitHub
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key id
    r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
    r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}",  # Stripe
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
    r"(?P<keep2>://[^/\s:@]+:)[^/\s@]+(?=@)",  # the password in https://user:password@host
    r"(?P<keep3>(?i:(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|authorization)[\w-]{0,64}+)"
    r"[\"']?\s*[=:]\s*[\"']?)(?i:(?:basic|bearer|digest|token)\s+)?[^\s\"',;&]{4,}",  # key=value in free text
    r"\b[0-9a-fA-F]{32,}\b",  # long hex: API keys, session secrets (also hashes: better lost than leaked)
)
_CREDENTIAL: Final = re.compile("|".join(f"(?:{p})" for p in _CREDENTIAL_PATTERNS))
_TOKEN_CANDIDATE: Final = re.compile(r"[A-Za-z0-9+/_=-]{32,}")


def _replace_credential(match: re.Match[str]) -> str:
    keep = match.group("keep1") or match.group("keep2") or match.group("keep3") or ""
    return keep + REDACTED


def _entropy(text: str) -> float:
    counts = Counter(text)
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _looks_random(token: str) -> bool:
    """A long token that mixes cases and digits with high entropy: a base64/base62 secret, not a word or a path."""
    if token.startswith("/") or token.count("/") > 2:
        return False
    if not (any(c.isupper() for c in token) and any(c.islower() for c in token)):
        return False
    digits = sum(c.isdigit() for c in token)
    entropy = _entropy(token)
    return (digits >= 2 and entropy >= 4.0) or (len(token) >= 40 and entropy >= 4.5)


def _replace_token(match: re.Match[str]) -> str:
    token = match.group(0)
    return REDACTED if _looks_random(token) else token


class Redactor:
    """Redacts argument values and free text according to the configured secret keys."""

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._keys = tuple(key.lower() for key in keys if key)
        self._secret_keys: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            lowered = key.lower()
            known = any(part in lowered for part in self._keys)
            if len(self._secret_keys) >= _KEY_CACHE_LIMIT:  # keys come from agents: bound the cache
                self._secret_keys.clear()
            self._secret_keys[key] = known
        return known

    def text(self, text: str) -> str:
        """`text` with every credential-shaped part replaced by `[REDACTED]`."""
        redacted = _CREDENTIAL.sub(_replace_credential, text)
        return _TOKEN_CANDIDATE.sub(_replace_token, redacted)

    def arguments(self, value: Any, _depth: int = 0) -> Any:
        """A copy of `value` (JSON data) that is safe to record."""
        if isinstance(value, str):
            return self.text(value)
        if _depth >= _MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            return {
                str(key): REDACTED if self.is_secret_key(str(key)) else self.arguments(item, _depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.arguments(item, _depth + 1) for item in value]
        return value

    def reason(self, reason: str, arguments: Mapping[str, Any] | None) -> str:
        """A denial reason with nothing secret in it.

        A reason may quote the value that failed (a schema error does). Values under secret keys are
        cut out wherever they appear, and credential-shaped text is replaced as everywhere else.
        """
        if arguments:
            for secret in sorted(self._secret_values(arguments, 0), key=len, reverse=True):
                reason = reason.replace(secret, REDACTED)
        return self.text(reason)

    def _secret_values(self, value: Any, depth: int, under_secret: bool = False) -> set[str]:
        found: set[str] = set()
        if depth >= _MAX_DEPTH:
            return found
        if isinstance(value, Mapping):
            for key, item in value.items():
                found |= self._secret_values(item, depth + 1, under_secret or self.is_secret_key(str(key)))
        elif isinstance(value, list | tuple):
            for item in value:
                found |= self._secret_values(item, depth + 1, under_secret)
        elif under_secret and value is not None:
            text = value if isinstance(value, str) else str(value)
            if len(text) >= _MIN_ECHOED_SECRET:
                found.add(text)
        return found
