"""An OpenAI Agents SDK agent whose only MCP server is mcp-firewall, driven by a scripted model.

`ScriptedModel` stands in for the LLM (no API key, no network): on each turn it emits the next step
of SCRIPT as a function call, using whichever offered tool ends with that name (the firewall
prefixes tool names, e.g. `notes__read_note`, and may hide tools this agent may not see).

    python examples/agents/openai_agents_agent.py

The MCP server command is `mcp-firewall run --config examples/firewall.yaml --agent openai-agents-agent`
unless MCP_FIREWALL_CMD overrides it (a JSON list or a shell-quoted string).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from agents import Agent, RunContextWrapper, Runner, Usage, set_tracing_disabled
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.mcp import MCPServerStdio, MCPServerStdioParams
from agents.models.interface import Model
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

REPO = Path(__file__).resolve().parents[2]
AGENT = "openai-agents-agent"

# What the "model" will try, in order: (tool name without prefix, arguments).
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("list_notes", {}),
    ("create_note", {"name": "draft-openai.txt", "text": "written by openai-agents\n"}),
    ("search_notes", {"query": "openai"}),
    ("read_note", {"name": "/etc/passwd"}),  # absolute path: must never succeed
    ("overwrite_note", {"name": "draft-openai.txt", "text": "gone"}),  # destructive
    ("delete_note", {"name": "draft-openai.txt"}),  # destructive
]


def firewall_command(agent: str) -> list[str]:
    """The one MCP server this agent uses: the firewall, unless MCP_FIREWALL_CMD says otherwise."""
    raw = os.environ.get("MCP_FIREWALL_CMD", "").strip()
    if raw:
        return [str(a) for a in json.loads(raw)] if raw.startswith("[") else shlex.split(raw)
    config = os.environ.get("MCP_FIREWALL_CONFIG") or REPO / "examples" / "firewall.yaml"
    return [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--agent", agent]


def first_line(text: str, width: int = 90) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "(no content)"
    return line if len(line) <= width else line[: width - 3] + "..."


def output_text(output: Any) -> str:
    """A function_call_output is a string or a list of content items such as {"type": "input_text", ...}."""
    if isinstance(output, list):
        return ", ".join(str(item.get("text", item)) if isinstance(item, dict) else str(item) for item in output)
    return str(output)


def tool_error(ctx: RunContextWrapper[Any], error: Exception) -> str:
    """Show the model why a call failed (the SDK default hides it behind a generic message)."""
    return f"error: {error}"


class ScriptedModel(Model):
    """Stand-in LLM: one scripted function call per turn, then a final message."""

    def __init__(self) -> None:
        self.steps = iter(SCRIPT)
        self.calls = 0

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        # The previous call's result (tool output, tool error or firewall refusal) is the last input item.
        last = input[-1] if isinstance(input, list) and input else None
        if isinstance(last, dict) and last.get("type") == "function_call_output":
            print(f"   <- {first_line(output_text(last.get('output')))}")
        offered = [t.name for t in tools]
        for tool, args in self.steps:
            name = next((n for n in offered if n == tool or n.endswith("__" + tool)), None)
            if name is None:
                print(f"-> {tool}: not offered to this agent, skipped")
                continue
            print(f"-> {name}({json.dumps(args)})")
            self.calls += 1
            call_id = f"call_{self.calls}"
            item = ResponseFunctionToolCall(
                type="function_call", id=f"fc_{self.calls}", call_id=call_id, name=name, arguments=json.dumps(args)
            )
            return ModelResponse(output=[item], usage=Usage(), response_id=None)
        text = ResponseOutputText(type="output_text", text=f"done: {self.calls} tool calls made", annotations=[])
        message = ResponseOutputMessage(
            type="message", id="msg_1", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("this scripted model does not stream")


async def main() -> None:
    set_tracing_disabled(True)  # otherwise the SDK tries to upload traces to the vendor's platform
    cmd = firewall_command(AGENT)
    print(f"server: {shlex.join(cmd)}")
    params = MCPServerStdioParams(command=cmd[0], args=cmd[1:], env=dict(os.environ), cwd=REPO)
    # cache_tools_list: list tools once per run; the timeout leaves room for the firewall to start its upstreams.
    async with MCPServerStdio(
        params=params,
        name="mcp-firewall",
        cache_tools_list=True,
        client_session_timeout_seconds=30,
        failure_error_function=tool_error,
    ) as server:
        agent = Agent(name=AGENT, instructions="Tidy up my notes.", model=ScriptedModel(), mcp_servers=[server])
        result = await Runner.run(agent, "Tidy up my notes.", max_turns=len(SCRIPT) + 2)
    print(result.final_output)


if __name__ == "__main__":
    anyio.run(main)
