"""Input that two parsers could read differently is refused on the wire, and the session goes on."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from support.harness import eventually, raw_session
from support.servers import lowlevel, tool

from mcp_firewall.proxy.framing import Oversized

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def line(message: Any) -> bytes:
    return json.dumps(message).encode()


async def _started(servers: dict[str, Any]) -> Any:
    session, out, recorders, upstreams = await raw_session(servers)
    return session, out, recorders, upstreams


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"', -32700, "Parse error"),
        (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}', -32700, "duplicate object key 'id'"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__echo","arguments":{"text":"x","text":"y"}}}',
            -32700,
            "duplicate",
        ),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600, "batches"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__echo","arguments":{"text":"\\ud800"}}}',
            -32700,
            "surrogate",
        ),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}', -32700, "NaN"),
        (b'\xff\xfe{"jsonrpc":"2.0","id":1,"method":"ping"}', -32700, "UTF-8"),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600, "JSON-RPC 2.0"),
        (b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}', -32600, "id must be"),
        (b'"just a string"', -32600, "JSON-RPC 2.0"),
    ],
)
async def test_malformed_or_ambiguous_input_gets_an_error_and_reaches_no_upstream(
    raw: bytes, code: int, fragment: str
) -> None:
    session, out, recorders, upstreams = await _started({"a": lowlevel([tool("echo")])})
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstreams[0].run)
        session._tg = tg
        await session.handle_line(line(INIT))
        await eventually(lambda: out)
        await session.handle_line(raw)
        error = out[-1]["error"]
        assert error["code"] == code and fragment in error["message"]
        await session.handle_line(line({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        assert out[-1] == {"jsonrpc": "2.0", "id": 9, "result": {}}  # the session goes on
        assert recorders["a"].calls() == []
        upstreams[0].stop()
        tg.cancel_scope.cancel()


async def test_an_oversized_message_is_refused_with_a_parse_error_and_null_id() -> None:
    session, out, _, _ = await raw_session({})
    await session.handle_line(Oversized(10_000_000))
    assert out == [
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32700, "message": "Parse error: message of 10000000 bytes exceeds the limit of 4096"},
        }
    ]


async def test_a_request_before_initialization_is_refused() -> None:
    session, out, _, _ = await raw_session({})
    await session.handle_line(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    assert out[-1]["error"]["code"] == -32600
    assert "before initialization" in out[-1]["error"]["message"]


async def test_an_unknown_method_is_refused_and_never_forwarded() -> None:
    session, out, recorders, upstreams = await _started({"a": lowlevel([tool("echo")])})
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstreams[0].run)
        session._tg = tg
        await session.handle_line(line(INIT))
        await eventually(lambda: out)
        await session.handle_line(line({"jsonrpc": "2.0", "id": 2, "method": "tasks/list", "params": {}}))
        assert out[-1]["error"] == {"code": -32601, "message": "Method not found: tasks/list"}
        assert "tasks/list" not in recorders["a"].methods()
        upstreams[0].stop()
        tg.cancel_scope.cancel()


async def test_split_lines_drops_an_over_long_line_without_buffering_it_and_keeps_the_next() -> None:
    from mcp_firewall.proxy.framing import split_lines

    async def chunks() -> Any:
        yield b'{"a":1}\n' + b"x" * 50
        yield b"y" * 100
        yield b'\n{"b":2}\n'

    got = [item async for item in split_lines(chunks(), 64)]
    assert got[0] == b'{"a":1}'
    assert isinstance(got[1], Oversized) and got[1].size == 150
    assert got[2] == b'{"b":2}'


@pytest.mark.parametrize(
    ("line", "relayed"),
    [
        (
            b'{"jsonrpc":"2.0","id":7,"result":{"content":[]}}',
            b'{"jsonrpc":"2.0","id":"a-1","result":{"content":[]}}\n',
        ),
        (b'{"result":{"x":1},"jsonrpc":"2.0","id": 7}', b'{"result":{"x":1},"jsonrpc":"2.0","id":"a-1"}\n'),
        (b'{"jsonrpc":"2.0","id":7,"result":{"structuredContent":{"id":7}}}', None),  # ambiguous: re-serialise
        (
            b'{"jsonrpc":"2.0","id":7,"result":{"text":"\\"id\\":7"}}',
            b'{"jsonrpc":"2.0","id":"a-1","result":{"text":"\\"id\\":7"}}\n',
        ),
        (b'{"jsonrpc":"2.0","id":77,"result":{}}', None),  # another id entirely
    ],
)
def test_an_upstream_response_is_relayed_with_only_its_id_changed_when_that_is_unambiguous(
    line: bytes, relayed: bytes | None
) -> None:
    from mcp_firewall.proxy import jsonrpc

    message = jsonrpc.load_trusted(line)
    assert message is not None
    assert jsonrpc.with_id(line, message, 7, "a-1") == relayed


def test_a_response_with_extra_top_level_keys_is_re_serialised_not_spliced() -> None:
    from mcp_firewall.proxy import jsonrpc

    line = b'{"jsonrpc":"2.0","id":7,"result":{},"extra":true}'
    message = jsonrpc.load_trusted(line)
    assert message is not None and jsonrpc.with_id(line, message, 7, 1) is None


def test_a_lone_surrogate_from_an_upstream_is_written_as_its_escape_in_valid_utf8() -> None:
    from mcp_firewall.proxy import jsonrpc

    message = jsonrpc.load_trusted(b'{"jsonrpc":"2.0","id":1,"result":{"text":"a\\ud800b"}}')
    assert message is not None
    line = jsonrpc.dump(message)
    assert line == b'{"jsonrpc":"2.0","id":1,"result":{"text":"a\\ud800b"}}\n'
    line.decode("utf-8")  # valid UTF-8


def test_an_upstream_line_that_is_not_utf8_is_not_a_message() -> None:
    from mcp_firewall.proxy import jsonrpc

    assert jsonrpc.load_trusted(b'{"jsonrpc":"2.0","id":1,"result":{"t":"\xed\xa0\x80"}}') is None
