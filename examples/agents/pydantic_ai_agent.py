"""A pydantic-ai agent whose only MCP server is mcp-firewall, driven by a scripted model.

`FunctionModel(ScriptedLLM())` stands in for the LLM (no API key needed): on each turn it takes the
next step of SCRIPT, using whichever offered tool ends with that name (the firewall prefixes tool names, e.g.
`notes__read_note`, and may hide tools this agent is not allowed to see).

    python examples/agents/pydantic_ai_agent.py

The MCP server command is `mcp-firewall run --config examples/firewall.yaml --agent pydantic-ai-agent`
unless MCP_FIREWALL_CMD overrides it (a JSON list or a shell-quoted string).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import anyio
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

REPO = Path(__file__).resolve().parents[2]
AGENT = "pydantic-ai-agent"

# What the "model" will try, in order: (tool name without prefix, arguments).
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("list_notes", {}),
    ("search_notes", {"query": "milk"}),
    ("get_current_time", {"timezone": "UTC"}),  # from a second upstream (mcp-server-time), if the firewall has it
    ("create_note", {"name": "draft-pydantic.txt", "text": "written by pydantic-ai\n"}),
    ("read_note", {"name": "../secrets.txt"}),  # path traversal: must never succeed
    ("delete_note", {"name": "draft-pydantic.txt"}),  # destructive
]


def firewall_command(agent: str) -> list[str]:
    """The one MCP server this agent uses: the firewall, unless MCP_FIREWALL_CMD says otherwise."""
    raw = os.environ.get("MCP_FIREWALL_CMD", "").strip()
    if raw:
        return [str(a) for a in json.loads(raw)] if raw.startswith("[") else shlex.split(raw)
    config = os.environ.get("MCP_FIREWALL_CONFIG") or REPO / "examples" / "firewall.yaml"
    return [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--agent", agent]


class ScriptedLLM:
    """Stand-in LLM for `FunctionModel`: one scripted tool call per turn, then a final text answer."""

    def __init__(self) -> None:
        self.steps = iter(SCRIPT)
        self.calls = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        # Show what came back for the previous call: a ToolReturnPart (outcome "success" or
        # "failed" for an isError result) or a RetryPromptPart (a JSON-RPC error, e.g. a refusal).
        last = messages[-1].parts[-1] if messages else None
        if isinstance(last, ToolReturnPart):
            print(f"   <- {last.outcome}: {first_line(last.model_response_str() or repr(last.content))}")
        elif isinstance(last, RetryPromptPart):
            print(f"   <- error: {first_line(last.model_response())}")
        offered = [t.name for t in info.function_tools]
        for tool, args in self.steps:
            name = next((n for n in offered if n == tool or n.endswith("__" + tool)), None)
            if name is None:
                print(f"-> {tool}: not offered to this agent, skipped")
                continue
            print(f"-> {name}({json.dumps(args)})")
            self.calls += 1
            return ModelResponse(parts=[ToolCallPart(name, args)])
        return ModelResponse(parts=[TextPart(f"done: {self.calls} tool calls made")])


def first_line(text: str, width: int = 90) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(no content)"
    return line if len(line) <= width else line[: width - 3] + "..."


async def main() -> None:
    cmd = firewall_command(AGENT)
    print(f"server: {shlex.join(cmd)}")
    transport = StdioTransport(command=cmd[0], args=cmd[1:], env=dict(os.environ), cwd=str(REPO))
    # "failed": an isError result goes back to the model as a failed tool return instead of a retry
    # request; max_retries: a refused call (JSON-RPC error) is reported back, never fatal for the run.
    toolset = MCPToolset(transport, tool_error_behavior="failed", max_retries=len(SCRIPT))
    agent = Agent(FunctionModel(ScriptedLLM()), toolsets=[toolset])
    async with agent:
        result = await agent.run("Tidy up my notes.")
    print(result.output)


if __name__ == "__main__":
    anyio.run(main)
