"""A tiny stdio MCP server (handshake era, no SDK: it starts in milliseconds) for lifecycle tests.

Tools: ``echo(text)`` answers ``text``; ``crash()`` makes the process exit with status 3 *without
answering*, so the call that asked is in flight when the upstream dies. Each process reports itself
in its tool descriptions (``pid N``), so a test can tell a restarted upstream from the first one.

With ``CRASHY_MARKER=PATH``, ``crash()`` first creates PATH, and a process that starts while PATH exists
removes it and waits ``CRASHY_RESTART_DELAY`` seconds (default 1) before it answers anything: the
window in which the crashed upstream's tools are gone is then wide enough to observe on a busy machine.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

PROTOCOL_VERSION = "2025-11-25"
TOOLS = [
    {
        "name": "echo",
        "description": f"Answer with the text given (pid {os.getpid()}).",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "crash",
        "description": f"Exit at once, without answering (pid {os.getpid()}).",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": False, "destructiveHint": True},
    },
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def result_of(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "crashy", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        if params.get("name") == "crash":
            if marker := os.environ.get("CRASHY_MARKER"):
                open(marker, "w", encoding="utf-8").close()
            os._exit(3)
        if params.get("name") == "echo":
            text = str((params.get("arguments") or {}).get("text", ""))
            return {"content": [{"type": "text", "text": text}], "isError": False}
    return None


def main() -> None:
    marker = os.environ.get("CRASHY_MARKER")
    if marker and os.path.exists(marker):
        os.remove(marker)
        time.sleep(float(os.environ.get("CRASHY_RESTART_DELAY", "1")))
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue  # notifications and responses
        result = result_of(message["method"], message.get("params") or {})
        if result is None:
            send({"id": message["id"], "error": {"code": -32601, "message": f"no such method or tool: {line[:80]}"}})
        else:
            send({"id": message["id"], "result": result})


if __name__ == "__main__":
    main()
