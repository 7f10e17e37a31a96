"""The firewall in front of mcp-server-fetch, fetching from a local http.server on 127.0.0.1.

Two fetch upstreams serve one session: `fetch` may reach the IP 127.0.0.1, `named` only the name
`localhost`, both over http on the test server's port. The `url` constraint compares what is written
(no DNS): an IP in another spelling is that IP; a name is never an IP, nor an IP a name.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from .conftest import FirewallConfig, Recorded, connect, nothing_forwarded, python_peer, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PAGE = "<html><head><title>Offline</title></head><body><h2>Hello offline</h2><p>served locally</p></body></html>"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A local web server on a free port of 127.0.0.1, serving one page at /."""
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


SCOPES = """
servers:
  fetch: {{read: [fetch]}}
  named: {{read: [fetch]}}
scopes:
  by-ip:
    allow:
      - tools: [fetch__fetch]
        args:
          url: {{url: {{schemes: [http], hosts: ["127.0.0.1"], ports: [{port}]}}}}
  by-name:
    allow:
      - tools: [named__fetch]
        args:
          url: {{url: {{schemes: [http], hosts: [localhost], ports: [{port}]}}}}
agents:
  A: {{scopes: [by-ip, by-name]}}
"""


@dataclass
class Session:
    client: Client
    port: int
    upstreams: dict[str, Recorded]

    async def fetch(self, upstream: str, url: str, raw: bool = True) -> CallToolResult:
        """raw: the HTML as served (the markdown conversion starts a node process per call: slow)."""
        arguments = {"url": url.format(port=self.port), "max_length": 2000, "raw": raw}
        return await self.client.call_tool(f"{upstream}__fetch", arguments)

    def sentinel(self, upstream: str) -> Any:
        async def call() -> None:
            host = "127.0.0.1" if upstream == "fetch" else "localhost"
            assert not (await self.fetch(upstream, f"http://{host}:{{port}}/")).is_error

        return call


@pytest.fixture(scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory, web_port: int) -> AsyncIterator[Session]:
    config = FirewallConfig(tmp_path_factory.mktemp("fetch-firewall"))
    fetch_server = python_peer("mcp-server-fetch")
    upstreams = {
        name: config.upstream(name, fetch_server, "--allow-private-ips", "--ignore-robots-txt")
        for name in ("fetch", "named")
    }
    config.write(SCOPES.format(port=web_port))
    async with connect(config, mode="auto") as client:
        yield Session(client, web_port, upstreams)


async def test_an_allowed_url_returns_the_page(session: Session) -> None:
    result = await session.fetch("fetch", "http://127.0.0.1:{port}/", raw=False)

    assert not result.is_error, text_of(result)
    assert "Hello offline" in text_of(result)


@pytest.mark.parametrize(
    ("upstream", "url", "case"),
    [
        ("fetch", "http://x@127.0.0.1:{port}/", "userinfo"),
        ("fetch", "http://user:pw@127.0.0.1:{port}/", "userinfo with a password"),
        ("fetch", "http://127.0.0.1:1/", "another port"),
        ("fetch", "http://127.0.0.1/", "the scheme's default port"),
        ("fetch", "https://127.0.0.1:{port}/", "another scheme"),
        ("fetch", "http://localhost:{port}/", "a name, when only the IP is listed"),
        ("fetch", "http://127.0.0.2:{port}/", "another loopback IP"),
        ("fetch", "/etc/passwd", "not an absolute URL"),
        ("named", "http://2130706433:{port}/", "a decimal IP, when only localhost is listed"),
        ("named", "http://0x7f.1:{port}/", "a hex IP, when only localhost is listed"),
        ("named", "http://127.0.0.1:{port}/", "the IP, when only the name is listed"),
        ("named", "http://localhost.evil.example:{port}/", "a name that only starts with the listed one"),
        ("named", "http://[::1]:{port}/", "IPv6 loopback, when only the name is listed"),
    ],
)
async def test_a_url_outside_the_grant_is_denied_and_never_fetched(
    session: Session, upstream: str, url: str, case: str
) -> None:
    async with nothing_forwarded(session.upstreams[upstream], session.sentinel(upstream)):
        result = await session.fetch(upstream, url)

    assert result.is_error, f"{case}: {text_of(result)}"
    assert text_of(result).startswith("Denied by mcp-firewall:"), text_of(result)
    denial = (result.meta or {})["mcp_firewall/denial"]
    assert denial["argument"] == "url" and denial["constraint"] == "url", denial


@pytest.mark.parametrize(
    ("upstream", "url", "resolvable"),
    [
        ("fetch", "http://0x7f.1:{port}/", True),
        ("fetch", "http://2130706433:{port}/", True),
        ("named", "http://LOCALHOST:{port}/", True),
        ("named", "http://localhost.:{port}/", False),  # this machine's resolver has no "localhost."
    ],
    ids=["hex IP", "decimal IP", "uppercase name", "trailing-dot name"],
)
async def test_an_equivalent_spelling_of_a_listed_host_is_allowed_and_forwarded_as_written(
    session: Session, upstream: str, url: str, resolvable: bool
) -> None:
    recorded = session.upstreams[upstream]
    before = len(recorded.received())

    result = await session.fetch(upstream, url)

    assert not text_of(result).startswith("Denied by mcp-firewall"), text_of(result)
    calls = recorded.tool_calls(since=before)
    assert [c["params"]["arguments"]["url"] for c in calls] == [url.format(port=session.port)]
    if resolvable:
        assert "Hello offline" in text_of(result), text_of(result)
