"""A scripted agent on the official MCP Python SDK client, talking only to mcp-firewall.

There is no LLM: the agent lists its tools, then makes a fixed sequence of calls. Some are
harmless reads; others (a destructive delete, a path-traversal note name) are the kind a
firewall policy should refuse. Each call is printed with a one-line outcome:

    ok         the call went through
    isError    a tool-level error result (from the upstream, or a firewall denial)
    rpc-error  a JSON-RPC error (e.g. the firewall refused the request outright)

    python examples/agents/sdk_agent.py [--era legacy|modern|auto] [--prefix notes__]

The MCP server command is `mcp-firewall run --config examples/firewall.yaml --agent sdk-agent`
unless MCP_FIREWALL_CMD overrides it (a JSON list or a shell-quoted string), e.g. to talk to
the notes server directly:  MCP_FIREWALL_CMD="python examples/servers/notes_server.py"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import CallToolResult, TextContent

REPO = Path(__file__).resolve().parents[2]
AGENT = "sdk-agent"

ERAS = {"legacy": "legacy", "modern": "2026-07-28", "auto": "auto"}  # --era -> Client(mode=...)

# The script: (tool name without the firewall's prefix, arguments).
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("list_notes", {}),
    ("create_note", {"name": "draft-todo.txt", "text": "buy milk\n"}),
    ("append_note", {"name": "draft-todo.txt", "text": "call mum\n"}),
    ("read_note", {"name": "draft-todo.txt"}),
    ("search_notes", {"query": "milk"}),
    ("create_note", {"name": "todo.txt", "text": "not a draft\n"}),  # the demo scope only allows draft-*
    ("read_note", {"name": "../../etc/passwd"}),  # path traversal: must never succeed
    ("overwrite_note", {"name": "draft-todo.txt", "text": ""}),  # destructive
    ("delete_note", {"name": "draft-todo.txt"}),  # destructive
    ("summarize", {"text": "buy milk, call mum"}),  # the upstream may not ask the agent's model (sampling: deny)
]


def firewall_command(agent: str) -> list[str]:
    """The one MCP server this agent uses: the firewall, unless MCP_FIREWALL_CMD says otherwise."""
    raw = os.environ.get("MCP_FIREWALL_CMD", "").strip()
    if raw:
        return [str(a) for a in json.loads(raw)] if raw.startswith("[") else shlex.split(raw)
    config = os.environ.get("MCP_FIREWALL_CONFIG") or REPO / "examples" / "firewall.yaml"
    return [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--agent", agent]


def first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def outcome(result: CallToolResult) -> tuple[str, str]:
    texts = [c.text for c in result.content if isinstance(c, TextContent)]  # a list result = one text per item
    if not texts and result.structured_content is not None:  # e.g. an empty list: {"result": []}
        texts = [json.dumps(result.structured_content.get("result", result.structured_content))]
    return ("isError" if result.is_error else "ok"), first_line(", ".join(texts) or "(no content)")


async def run(era: str, prefix: str) -> None:
    cmd = firewall_command(AGENT)
    print(f"server: {shlex.join(cmd)}")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ), cwd=REPO)
    async with Client(params, mode=ERAS[era]) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        print(f"protocol {client.protocol_version}; {len(names)} tools: {', '.join(names)}")
        if not any(n.startswith(prefix) for n in names) and any(n == "list_notes" for n in names):
            print(f"(no tool has the prefix {prefix!r}: talking to the notes server directly, no prefix)")
            prefix = ""
        tw = max(len(prefix + tool) for tool, _ in SCRIPT)  # column widths
        aw = max(len(json.dumps(args)) for _, args in SCRIPT)
        print(f"\n{'#':>2}  {'tool':<{tw}}  {'arguments':<{aw}}  {'outcome':<9}  first line of the result")
        print(f"{'-' * 2}  {'-' * tw}  {'-' * aw}  {'-' * 9}  {'-' * 24}")
        for i, (tool, args) in enumerate(SCRIPT, 1):
            try:
                status, text = outcome(await client.call_tool(prefix + tool, args))
            except MCPError as e:  # the request itself was refused
                status, text = "rpc-error", f"{e.code}: {first_line(e.error.message)}"
            print(f"{i:>2}  {prefix + tool:<{tw}}  {json.dumps(args):<{aw}}  {status:<9}  {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Scripted MCP SDK agent behind mcp-firewall.")
    parser.add_argument("--era", choices=sorted(ERAS), default="auto", help="protocol era to speak (default: auto)")
    parser.add_argument("--prefix", default="notes__", help="tool-name prefix the firewall adds (default: notes__)")
    args = parser.parse_args()
    try:
        anyio.run(run, args.era, args.prefix)
    except* (MCPError, OSError) as group:  # e.g. the server did not start: its own stderr is shown above
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        sys.exit(f"error: no working MCP server ({error})")


if __name__ == "__main__":
    main()
