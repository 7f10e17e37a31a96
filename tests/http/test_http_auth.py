"""Credentials over HTTP: API keys (rotation, revocation, expiry, open streams cut) and JWTs (SPEC §5)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fwhttp import ACCEPT, INITIALIZE, WAIT, jsonrpc, serve, sse_messages

from mcp_firewall.keys import add_key, generate_key, revoke_key

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
AUDIENCE = "mcp-firewall"


async def _initialize(http: httpx2.AsyncClient, url: str, token: str | None) -> httpx2.Response:
    headers = {**ACCEPT, **({"Authorization": token} if token is not None else {})}
    return await http.post(url, json=INITIALIZE, headers=headers)


# -- API keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "Token mcpfw_x",
        "Bearer mcpfw_" + "A" * 43,  # well-formed, never issued
        "Bearer mcpfw_short",
        "Bearer not-a-key-nor-a-jwt",
        "Bearer a.b.c",  # JWT-shaped, but no JWT issuer is configured
    ],
)
async def test_requests_without_a_valid_credential_get_401_and_nothing_else(
    tmp_path: Path, authorization: str | None
) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        response = await _initialize(http, fw.url, authorization)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="mcp-firewall"'
    assert response.content == b""
    assert "mcp-session-id" not in response.headers


async def test_a_wrong_key_is_refused_even_when_only_one_character_differs(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        key = fw.keys["alice"]
        flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
        good = await _initialize(http, fw.url, f"Bearer {key}")
        wrong = await _initialize(http, fw.url, f"Bearer {flipped}")
        lower_scheme = await _initialize(http, fw.url, f"bearer {key}")
    assert (good.status_code, wrong.status_code, lower_scheme.status_code) == (200, 401, 200)


async def test_an_expired_key_is_refused(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        old, _ = add_key(fw.dir / "keys.yaml", "alice", expires="2020-01-02", now=datetime(2020, 1, 1, tzinfo=UTC))
        response = await _initialize(http, fw.url, f"Bearer {old}")
    assert response.status_code == 401


async def _open_session(http: httpx2.AsyncClient, url: str, key: str) -> dict[str, str]:
    opened = await _initialize(http, url, f"Bearer {key}")
    assert opened.status_code == 200
    headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    notified = await http.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={**headers, "Authorization": f"Bearer {key}"},
    )
    assert notified.status_code == 202
    return headers


async def test_a_key_revoked_mid_session_is_refused_at_its_next_request(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        session = await _open_session(http, fw.url, fw.keys["alice"])
        before = await http.post(
            fw.url, json=jsonrpc("tools/list", request_id=2), headers={**session, **fw.auth("alice")}
        )
        revoke_key(fw.dir / "keys.yaml", "alice-1")
        after = await http.post(
            fw.url, json=jsonrpc("tools/list", request_id=3), headers={**session, **fw.auth("alice")}
        )
    assert before.status_code == 200
    assert after.status_code == 401


async def test_revoking_a_key_cuts_its_open_streams(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        session = {**await _open_session(http, fw.url, fw.keys["alice"]), **fw.auth("alice")}
        call = jsonrpc("tools/call", {"name": "echo__slow", "arguments": {"seconds": 30}}, request_id=2)
        started = time.monotonic()
        with anyio.fail_after(WAIT):
            async with http.stream("POST", fw.url, json=call, headers=session) as stream:
                assert stream.status_code == 200
                revoke_key(fw.dir / "keys.yaml", "alice-1")
                body = b"".join([chunk async for chunk in stream.aiter_bytes()])
        assert time.monotonic() - started < 5  # cut within the watcher's period, long before the tool ends
    assert b'"result"' not in body
    assert fw.app.counters.cut == 1


async def test_a_stream_ends_when_its_key_expires(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
        key, _ = add_key(fw.dir / "keys.yaml", "alice", label="short", expires=soon)
        session = {**await _open_session(http, fw.url, key), "Authorization": f"Bearer {key}"}
        call = jsonrpc("tools/call", {"name": "echo__slow", "arguments": {"seconds": 30}}, request_id=2)
        with anyio.fail_after(WAIT):
            async with http.stream("POST", fw.url, json=call, headers=session) as stream:
                body = b"".join([chunk async for chunk in stream.aiter_bytes()])
        later = await http.post(fw.url, json=jsonrpc("tools/list", request_id=3), headers=session)
    assert b'"result"' not in body
    assert later.status_code == 401


async def test_keys_rotate_without_dropping_the_session(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        session = await _open_session(http, fw.url, fw.keys["alice"])
        new_key, _ = add_key(fw.dir / "keys.yaml", "alice", label="alice-2")
        listing = jsonrpc("tools/list", request_id=2)
        with_new = await http.post(fw.url, json=listing, headers={**session, "Authorization": f"Bearer {new_key}"})
        with_old = await http.post(fw.url, json=listing, headers={**session, **fw.auth("alice")})
        revoke_key(fw.dir / "keys.yaml", "alice-1")
        old_after = await http.post(fw.url, json=listing, headers={**session, **fw.auth("alice")})
        new_after = await http.post(fw.url, json=listing, headers={**session, "Authorization": f"Bearer {new_key}"})
    assert (with_new.status_code, with_old.status_code) == (200, 200)
    assert (old_after.status_code, new_after.status_code) == (401, 200)
    assert sse_messages(new_after.text)[-1]["result"]["tools"]


async def test_a_key_of_an_agent_the_policy_does_not_define_is_forbidden(tmp_path: Path) -> None:
    async with serve(tmp_path) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        stray, _ = add_key(fw.dir / "keys.yaml", "mallory", label="mallory-1")
        response = await _initialize(http, fw.url, f"Bearer {stray}")
    assert response.status_code == 403
    assert "mallory" not in response.text


def test_generated_keys_are_recognisable_and_random() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("mcpfw_") and len(k) == 49 for k in keys)


# -- JWT -----------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An identity provider in miniature: an RSA and an EC key, published as a JWKS file."""

    def __init__(self, directory: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        self.jwks = {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig"}, {**ec_jwk, "kid": "ec-1", "use": "sig"}]}
        self.path = directory / "jwks.json"
        self.path.write_text(json.dumps(self.jwks), encoding="utf-8")

    def token(
        self, claims: dict[str, Any] | None = None, *, alg: str = "RS256", kid: str = "rsa-1", key: Any = None
    ) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **(claims or {})}
        body = {k: v for k, v in body.items() if v is not None}
        signer = key if key is not None else (self.rsa if alg.startswith(("RS", "PS")) else self.ec)
        return jwt.encode(body, signer, algorithm=alg, headers={"kid": kid})

    def public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _unsigned(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(issuer: Issuer) -> str:
    """The HS/RS confusion attack: HMAC-sign with the issuer's *public* key as the secret."""
    import hashlib
    import hmac

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(issuer.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _jwt_auth(issuer: Issuer) -> dict[str, Any]:
    return {
        "keys": "keys.yaml",
        "jwt": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": str(issuer.path),
            "algorithms": ["RS256", "ES256"],
            "leeway_s": 5,
        },
    }


def _tokens(issuer: Issuer) -> dict[str, tuple[str, int]]:
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "valid RS256": (issuer.token(), 200),
        "valid ES256": (issuer.token(alg="ES256", kid="ec-1"), 200),
        "bad signature": (issuer.token(key=other), 401),
        "tampered payload": (_tamper(issuer.token()), 401),
        "wrong iss": (issuer.token({"iss": "https://evil.example.com/"}), 401),
        "wrong aud": (issuer.token({"aud": "someone-else"}), 401),
        "no aud": (issuer.token({"aud": None}), 401),
        "expired": (issuer.token({"exp": now - 60}), 401),
        "expired within leeway": (issuer.token({"exp": now - 2}), 200),
        "no exp": (issuer.token({"exp": None}), 401),
        "nbf in the future": (issuer.token({"nbf": now + 120}), 401),
        "alg none": (_unsigned({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}), 401),
        "HS256 with the RSA public key": (_hs256_with_public_key(issuer), 401),
        "unknown kid": (issuer.token(kid="rotated-away"), 401),
        "RSA key named for an EC token": (issuer.token(alg="ES256", kid="rsa-1"), 401),
        "agent claim not an agent name": (issuer.token({"sub": "not an agent!"}), 401),
        "agent not in the policy": (issuer.token({"sub": "mallory"}), 403),
    }


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "bob"
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


async def test_jwts_are_checked_as_the_spec_says(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    outcomes: dict[str, int] = {}
    async with serve(tmp_path, auth=_jwt_auth(issuer)) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
        for case, (token, _) in _tokens(issuer).items():
            outcomes[case] = (await _initialize(http, fw.url, f"Bearer {token}")).status_code
    assert outcomes == {case: status for case, (_, status) in _tokens(issuer).items()}


async def test_a_jwt_names_the_agent_that_sees_its_tools(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    async with serve(tmp_path, auth=_jwt_auth(issuer)) as fw:
        async with fw.client(token=issuer.token({"sub": "bob"}), mode="auto") as bob:
            with anyio.fail_after(WAIT):
                tools = await bob.list_tools()
    assert [t.name for t in tools.tools] == ["notes__read_note", "notes__write_note"]


async def test_an_unknown_kid_refetches_the_jwks_but_never_more_often_than_the_floor(tmp_path: Path) -> None:
    from mcp_firewall.proxy.identity import JwksSource

    issuer = Issuer(tmp_path)
    clock = [1000.0]
    published = {"keys": [issuer.jwks["keys"][1]]}  # only the EC key at first
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(published).encode()

    source = JwksSource("https://idp.example.com/jwks.json", fetch=fetch, refresh_floor_s=30, clock=lambda: clock[0])
    assert [k.kty for k in await source.keys_for("ec-1")] == ["EC"]
    published = issuer.jwks  # the issuer rotates in an RSA key
    assert await source.keys_for("rsa-1") == []  # within the floor: not fetched again
    clock[0] += 31
    assert [k.kty for k in await source.keys_for("rsa-1")] == ["RSA"]
    assert await source.keys_for("never-published") == []
    clock[0] += 5
    assert await source.keys_for("never-published") == []
    assert len(fetched) == 2  # a flood of unknown kids cannot hammer the issuer


async def test_jwks_is_fetched_from_a_url(tmp_path: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    issuer = Issuer(tmp_path)

    async def jwks(request: Any) -> JSONResponse:
        return JSONResponse(issuer.jwks)

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/jwks", jwks)]), port=0, log_level="error"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(WAIT):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        auth = _jwt_auth(issuer)
        auth["jwt"]["jwks"] = f"http://127.0.0.1:{port}/jwks"
        async with serve(tmp_path, auth=auth) as fw, httpx2.AsyncClient(timeout=WAIT) as http:
            ok = await _initialize(http, fw.url, f"Bearer {issuer.token()}")
        server.should_exit = True
    assert ok.status_code == 200


def test_a_plain_http_jwks_url_is_refused_unless_it_is_loopback() -> None:
    from mcp_firewall.proxy.identity import JwksSource

    with pytest.raises(ValueError, match="only https"):
        JwksSource("http://idp.example.com/jwks.json")
    JwksSource("https://idp.example.com/jwks.json")
