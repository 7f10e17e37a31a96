"""Who is calling: an HTTP request's `Authorization: Bearer` credential, turned into an agent (SPEC §5).

Two kinds of credential prove an agent:

- an API key the firewall issued (`mcpfw_…`, see `mcp_firewall.keys`): looked up by its SHA-256 and
  confirmed with `hmac.compare_digest`; revoked and expired keys are refused. The keys file is
  re-read whenever it changes (one `stat` per request; the read itself runs in a worker thread);
- a JWT from the configured issuer: the algorithm must be on the allow-list (asymmetric only, so
  `alg: none` and HMAC are refused outright), the key comes from the issuer's JWKS by `kid` (symmetric
  `oct` keys in a JWKS are ignored, so an RSA public key can never be used as an HMAC secret), the
  key's type must fit the algorithm, and `iss`, `aud`, `exp` and `nbf` are checked with a small leeway.
  The JWKS (a file, or an https URL) is cached and fetched again when a token names an unknown `kid`,
  never more often than `refresh_floor_s`.

Anything else is a `CredentialError`, whose message is for the firewall's log only: the agent is told
401 and nothing more. Neither the credential nor any part of it is ever logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import jwt

from mcp_firewall.config.model import Jwt
from mcp_firewall.errors import CredentialError, KeyFileError
from mcp_firewall.keys import KEY_PREFIX, KeyRing

__all__ = ["Authenticator", "Credential", "JwksSource", "JwtVerifier", "bearer_token"]

logger = logging.getLogger(__name__)

_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_CREDENTIAL = 8192
# Which JWK key type (and curve) each allowed algorithm needs.
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}


@dataclass(frozen=True, slots=True)
class _Key:
    """One usable signing key of the issuer, with what it may verify."""

    jwk: jwt.PyJWK
    kty: str
    crv: str | None
    alg: str | None

    def fits(self, alg: str) -> bool:
        kty, crv = _KEY_TYPES[alg]
        return self.alg in (None, alg) and self.kty == kty and (crv is None or self.crv == crv)


@dataclass(frozen=True, slots=True)
class Credential:
    """A proven identity: the agent, what proved it, and until when (epoch seconds; None: no end)."""

    agent: str
    kind: Literal["key", "jwt", "local"]
    id: str  # the key's label, the token's issuer and subject, or "local": safe to log
    expires_at: float | None = None


def bearer_token(authorization: str | None) -> str:
    """The credential of an `Authorization: Bearer …` header (scheme case-insensitive)."""
    if not authorization:
        raise CredentialError("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise CredentialError("the Authorization header is not `Bearer <credential>`")
    if len(token) > _MAX_CREDENTIAL or not token.isascii() or any(c.isspace() for c in token):
        raise CredentialError("malformed bearer credential")
    return token


Fetch = Callable[[str], Awaitable[bytes]]


async def _fetch_https(url: str) -> bytes:
    import httpx2

    async with httpx2.AsyncClient(timeout=10.0, follow_redirects=False) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.content


class JwksSource:
    """The issuer's signing keys by `kid`, from a file or a URL, cached; refetched on demand, rate-limited."""

    def __init__(
        self,
        location: str,
        *,
        fetch: Fetch | None = None,
        refresh_floor_s: float = 30.0,
        max_age_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(location)
        self._url = parts.scheme in ("http", "https")
        if self._url and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"JWKS URL {location!r}: only https is accepted (http only on loopback, for tests)")
        self.location = location
        self._fetch = fetch or _fetch_https
        self._floor = refresh_floor_s
        self._max_age = max_age_s
        self._clock = clock
        self._keys: dict[str | None, list[_Key]] = {}
        self._fetched_at = -math.inf
        self._lock = anyio.Lock()
        self.fetches = 0

    async def keys_for(self, kid: str | None) -> list[_Key]:
        """Keys that may have signed a token naming `kid` (every key when the token names none)."""
        now = self._clock()
        if now - self._fetched_at > self._max_age or (kid is not None and kid not in self._keys):
            await self._refresh()
        if kid is None:
            return [key for keys in self._keys.values() for key in keys]
        return list(self._keys.get(kid, ()))

    async def _refresh(self) -> None:
        async with self._lock:
            if self._clock() - self._fetched_at < self._floor:
                return  # someone just did, or we did too recently: never hammer the issuer
            self._fetched_at = self._clock()
            self.fetches += 1
            try:
                raw = await self._fetch(self.location) if self._url else await self._read_file()
                self._keys = _parse_jwks(raw)
            except Exception as exc:  # keep the keys we had; the request in hand is refused if it needs new ones
                logger.warning(
                    "cannot load the JWKS from %s (%s); keeping %d cached keys", self.location, exc, len(self._keys)
                )

    async def _read_file(self) -> bytes:
        return await anyio.to_thread.run_sync(Path(self.location).read_bytes)


def _parse_jwks(raw: bytes) -> dict[str | None, list[_Key]]:
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWKS is an object with a `keys` list")
    keys: dict[str | None, list[_Key]] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric (`oct`) and unknown keys are never used
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        crv, alg = entry.get("crv"), entry.get("alg")
        usable = _Key(key, entry["kty"], crv if isinstance(crv, str) else None, alg if isinstance(alg, str) else None)
        keys.setdefault(entry.get("kid"), []).append(usable)
    return keys


class JwtVerifier:
    """Checks JWTs from one issuer (SPEC §5) and names the agent from `agent_claim`."""

    def __init__(self, config: Jwt, source: JwksSource | None = None) -> None:
        self.config = config
        self.source = source or JwksSource(config.jwks)
        self._algorithms = frozenset(config.algorithms)

    async def verify(self, token: str) -> Credential:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialError("not a JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise CredentialError(f"JWT algorithm {str(alg)[:16]!r} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise CredentialError("JWT kid is not a string")
        candidates = [key.jwk for key in await self.source.keys_for(kid) if key.fits(alg)]
        if not candidates:
            raise CredentialError("no key of the issuer fits the JWT's kid and algorithm")
        if kid is None and len(candidates) > 1:
            raise CredentialError("the JWT names no kid and the issuer has several keys")
        claims = self._decode(token, candidates[0], alg)
        agent = claims.get(self.config.agent_claim)
        if not isinstance(agent, str) or not _AGENT.match(agent):
            raise CredentialError(f"the JWT's {self.config.agent_claim!r} claim is not an agent name")
        expires = claims["exp"]
        subject = str(claims.get("sub", ""))[:64]
        return Credential(agent, "jwt", f"jwt {subject}", float(expires) + self.config.leeway_s)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise CredentialError(f"JWT refused: {exc.__class__.__name__}") from None
        if not isinstance(claims.get("exp"), int | float):
            raise CredentialError("JWT exp is not a number")
        return claims


class Authenticator:
    """Turns an `Authorization` header into a `Credential`, or raises `CredentialError`.

    With neither keys nor JWT configured and a `local_agent`, every request is that agent (local
    single-agent mode; the caller makes sure it only listens on loopback).
    """

    def __init__(
        self,
        *,
        keys: KeyRing | None = None,
        jwt_verifier: JwtVerifier | None = None,
        local_agent: str | None = None,
    ) -> None:
        self.keys = keys
        self.jwt = jwt_verifier
        self.local_agent = local_agent
        self._reload_lock = anyio.Lock()

    @property
    def local(self) -> bool:
        return self.keys is None and self.jwt is None and self.local_agent is not None

    async def authenticate(self, authorization: str | None) -> Credential:
        if self.local:
            assert self.local_agent is not None
            return Credential(self.local_agent, "local", "local")
        token = bearer_token(authorization)
        if token.startswith(KEY_PREFIX):
            return await self._api_key(token)
        if self.jwt is not None and token.count(".") == 2:
            return await self.jwt.verify(token)
        raise CredentialError("the bearer credential is neither an API key nor a JWT this firewall accepts")

    async def _api_key(self, token: str) -> Credential:
        if self.keys is None:
            raise CredentialError("API keys are not configured (auth.keys)")
        await self.refresh_keys()
        record = self.keys.verify(token)
        if record is None:
            raise CredentialError("unknown, revoked or expired API key")
        expires_at = record.expires_at
        return Credential(record.agent, "key", record.label, expires_at.timestamp() if expires_at else None)

    async def refresh_keys(self) -> bool:
        """Reload the keys file if it changed; True when it was reloaded."""
        keys = self.keys
        if keys is None or not keys.changed():
            return False
        async with self._reload_lock:
            if not keys.changed():
                return False
            try:
                await anyio.to_thread.run_sync(keys.load)
            except KeyFileError as exc:
                logger.error("the keys file changed but is invalid; the last good keys stay in force: %s", exc)
                return False
        logger.info("keys file reloaded: %s", keys.path)
        return True

    def still_valid(self, credential: Credential) -> bool:
        """Whether an open stream's credential is still good (keys: not revoked; all: not expired)."""
        if credential.expires_at is not None and time.time() >= credential.expires_at:
            return False
        if credential.kind == "key":
            return self.keys is not None and self.keys.is_active(credential.id)
        return True
