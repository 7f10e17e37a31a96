"""JSON-RPC 2.0 framing for the data path: parse once, strictly; serialise once.

Input that different JSON parsers could read differently is refused before anything looks at it
(SPEC §4): duplicate object keys, invalid UTF-8, lone surrogates, batches and messages over the size
limit. Messages from upstreams are trusted to be JSON and parsed with the C parser alone.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

__all__ = [
    "CONNECTION_CLOSED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_TIMEOUT",
    "RESOURCE_NOT_FOUND",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "Message",
    "MessageError",
    "dump",
    "error_response",
    "load_trusted",
    "load_untrusted",
    "notification",
    "request",
    "response",
]

Message = dict[str, Any]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
CONNECTION_CLOSED: Final = -32000
REQUEST_TIMEOUT: Final = -32001
RESOURCE_NOT_FOUND: Final = -32002
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


class MessageError(Exception):
    """A message that cannot be accepted; `code` is the JSON-RPC error to answer with."""

    def __init__(self, code: int, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MessageError(PARSE_ERROR, f"Parse error: duplicate object key {key[:64]!r}")
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise MessageError(PARSE_ERROR, f"Parse error: {name} is not JSON")


_strict_decoder = json.JSONDecoder(object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)


def load_untrusted(line: bytes, max_bytes: int) -> Message:
    """Parse one message from an agent, refusing anything two parsers could read differently."""
    if len(line) > max_bytes:
        raise MessageError(PARSE_ERROR, f"Parse error: message of {len(line)} bytes exceeds the limit of {max_bytes}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: invalid UTF-8 at byte {exc.start}") from None
    try:
        value = _strict_decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise MessageError(PARSE_ERROR, f"Parse error: {exc.msg} at column {exc.colno}") from None
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(value):
        raise MessageError(PARSE_ERROR, "Parse error: lone UTF-16 surrogate in a string")
    if isinstance(value, list):
        raise MessageError(INVALID_REQUEST, "Invalid request: JSON-RPC batches are not accepted")
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise MessageError(INVALID_REQUEST, "Invalid request: expected a JSON-RPC 2.0 object")
    request_id = value.get("id")
    if "id" in value and (request_id is None or isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        raise MessageError(INVALID_REQUEST, "Invalid request: id must be a string or an integer")
    method = value.get("method")
    if method is not None and not isinstance(method, str):
        raise MessageError(INVALID_REQUEST, "Invalid request: method must be a string", request_id)
    params = value.get("params")
    if params is not None and not isinstance(params, dict):
        raise MessageError(INVALID_REQUEST, "Invalid request: params must be an object", request_id)
    return value


def _has_lone_surrogate(value: Any) -> bool:
    try:
        _encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def load_trusted(line: bytes) -> Message | None:
    """Parse one message from an upstream; None when it is not a JSON object (or not valid UTF-8)."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def dump(message: Message) -> bytes:
    """Serialise a message as one newline-terminated line of UTF-8.

    A lone surrogate (which only an upstream can send: agents' input is refused) is written as its
    `\\uXXXX` escape, so that the line stays valid UTF-8 and says exactly what the upstream sent."""
    try:
        return _encode(message).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return _encode_ascii(message).encode("ascii") + b"\n"


def with_id(line: bytes, message: Message, old_id: int, new_id: Any) -> bytes | None:
    """An upstream's response line with its id replaced, when that is unambiguous; else None.

    Only for a plain response (`jsonrpc`, `id`, `result` and nothing else) whose line names the id
    exactly once (a string cannot contain an unescaped quote, so another match would be a nested
    `"id"` key): then the bytes the agent gets are the upstream's, parsed once and never re-serialised.
    """
    if len(message) != 3 or "result" not in message or message.get("jsonrpc") != "2.0":
        return None
    wanted = str(old_id).encode()
    found = [match for match in _INTEGER_ID.finditer(line) if match.group(1) == wanted]
    if len(found) != 1:
        return None
    start, end = found[0].span()
    return b"".join((line[:start], b'"id":', _encode(new_id).encode("utf-8"), line[end:], b"\n"))


_INTEGER_ID = re.compile(rb'"id"\s*:\s*(\d+)(?=\s*[,}])')


def request(request_id: int | str, method: str, params: dict[str, Any] | None) -> Message:
    message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def response(request_id: Any, result: dict[str, Any]) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}
