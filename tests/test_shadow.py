"""Shadow mode (SPEC §4): try a tighter policy on live traffic before it is enforced.

`mode: shadow` on an agent: what steps 2–4 would hide or deny is forwarded and recorded as
`shadow-deny`. On a scope: calls that only that scope's rules would deny are. Explicit deny rules,
tools that no upstream advertises and refused input stay refused, and `audit query --decision
shadow-deny --summary` tells what would break.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
import yaml
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from support.harness import Firewall, firewall, raw_session
from support.servers import lowlevel, rich, tool

from mcp_firewall.policy.compile import Policy
from mcp_firewall.policy.decision import Decision
from mcp_firewall.proxy.observe import NullObserver, RequestInfo
from mcp_firewall.proxy.reload import load_policy

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[1]
UNKNOWN_TOOL = -32602
SCOPES = """
servers:
  files: {read: [read_file], write: [write_file], destructive: [delete_file]}
  rich: {read: ["*"]}
scopes:
  docs:
    allow:
      - tools: [files__read_file]
        args: {path: {within: [/srv/docs]}}
  drafts-trial:
    mode: shadow
    allow:
      - tools: [files__write_file]
        args: {path: {within: [/srv/drafts]}}
  public-only-trial:
    mode: shadow
    allow:
      - tools: [files__read_file]
        args: {path: {within: [/srv/docs/public]}}
deny:
  - tools: [files__delete_file]
    reason: nothing deletes files
agents:
  trialist: {scopes: [docs], mode: shadow}
  editor: {scopes: [docs, drafts-trial]}
  reviewer: {scopes: [docs, public-only-trial]}
"""


class Decisions(NullObserver):
    """An observer that keeps every decision, by tool or prompt or URI."""

    def __init__(self) -> None:
        self.made: list[tuple[str | None, Decision]] = []

    def begin(self, info: RequestInfo, decision: Decision | None) -> Any:
        if decision is not None:
            self.made.append((info.target, decision))

    def last(self) -> Decision:
        return self.made[-1][1]


def files() -> Any:
    path = {"path": {"type": "string"}}
    return lowlevel([tool("read_file", **path), tool("write_file", **path), tool("delete_file", **path)])


def policy(tmp_path: Path, scopes: str = SCOPES) -> Policy:
    (tmp_path / "scopes.yaml").write_text(scopes, encoding="utf-8")
    upstreams = {"files": {"command": "files-server"}, "rich": {"command": "rich-server"}}
    config = tmp_path / "firewall.yaml"
    config.write_text(yaml.safe_dump({"upstreams": upstreams, "scopes": ["scopes.yaml"]}), encoding="utf-8")
    return load_policy(config)


@asynccontextmanager
async def as_agent(tmp_path: Path, agent: str) -> AsyncIterator[tuple[Firewall, Decisions]]:
    decisions = Decisions()
    servers = {"files": files(), "rich": rich}
    async with firewall(servers, gate=policy(tmp_path), agent=agent, session_options={"observer": decisions}) as fw:
        yield fw, decisions


def forwarded(fw: Firewall) -> list[tuple[str, dict[str, Any]]]:
    return [(call["params"]["name"], call["params"]["arguments"]) for call in fw.recorders["files"].calls()]


def text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


# -- a shadow agent ----------------------------------------------------------------------------------------


async def test_a_shadow_agent_sees_every_tool_but_those_a_deny_rule_names_with_their_own_schemas(
    tmp_path: Path,
) -> None:
    async with as_agent(tmp_path, "trialist") as (fw, _):
        listed = {t.name: t.input_schema for t in (await fw.client.list_tools()).tools}

    assert "files__delete_file" not in listed
    assert {"files__read_file", "files__write_file", "rich__weather"} <= set(listed)
    assert listed["files__read_file"] == {"type": "object", "properties": {"path": {"type": "string"}}}


async def test_a_shadow_agent_call_the_policy_would_deny_is_forwarded_and_recorded_shadow_deny(
    tmp_path: Path,
) -> None:
    async with as_agent(tmp_path, "trialist") as (fw, decisions):
        result = await fw.client.call_tool("files__read_file", {"path": "/etc/passwd"})
        assert (result.is_error, text(result)) == (False, "read_file:")
        denied = decisions.last()

        await fw.client.call_tool("files__write_file", {"path": "/srv/docs/a"})
        hidden = decisions.last()

        await fw.client.call_tool("files__read_file", {"path": "/srv/docs/a"})
        allowed = decisions.last()

        assert forwarded(fw) == [
            ("read_file", {"path": "/etc/passwd"}),
            ("write_file", {"path": "/srv/docs/a"}),
            ("read_file", {"path": "/srv/docs/a"}),
        ]
    assert (denied.outcome, denied.scope, denied.argument, denied.constraint) == (
        "shadow-deny",
        "docs",
        "path",
        "within",
    )
    assert (hidden.outcome, hidden.reason) == ("shadow-deny", "no allow rule of the agent's scopes selects this tool")
    assert (allowed.outcome, allowed.scope) == ("allow", "docs")


async def test_deny_rules_and_tools_no_upstream_offers_stay_refused_for_a_shadow_agent(tmp_path: Path) -> None:
    async with as_agent(tmp_path, "trialist") as (fw, decisions):
        for name in ("files__delete_file", "files__no_such_tool"):
            with pytest.raises(MCPError) as caught:
                await fw.client.call_tool(name, {"path": "/srv/docs/a"})
            assert (caught.value.error.code, caught.value.error.message) == (UNKNOWN_TOOL, f"Unknown tool: {name}")
            assert decisions.last().outcome == "hidden"
        assert forwarded(fw) == []


async def test_input_no_parser_can_be_trusted_with_is_refused_before_shadow_mode_is_asked(tmp_path: Path) -> None:
    session, out, recorders, _ = await raw_session(
        {"files": files()}, gate=policy(tmp_path, SCOPES + "  tester: {scopes: [], mode: shadow}\n")
    )
    duplicate = (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call",'
        b'"params":{"name":"files__read_file","arguments":{"path":"/a","path":"/b"}}}'
    )

    await session.handle_line(duplicate)

    assert out[0]["error"]["code"] == -32700 and "duplicate" in out[0]["error"]["message"]
    assert recorders["files"].sent == []


async def test_a_shadow_agent_reads_resources_and_gets_prompts_it_holds_no_grant_for(tmp_path: Path) -> None:
    async with as_agent(tmp_path, "trialist") as (fw, decisions):
        resources = [str(r.uri) for r in (await fw.client.list_resources()).resources]
        read = await fw.client.read_resource("rich://static")
        resource_decision = decisions.last()
        prompt = await fw.client.get_prompt("rich__greet", {"name": "Ada"})
        prompt_decision = decisions.last()

    assert resources == ["rich://static"]
    assert read.contents[0].model_dump()["text"] == "static text"
    assert prompt.messages[0].content.model_dump()["text"] == "Hello Ada"
    assert resource_decision.outcome == prompt_decision.outcome == "shadow-deny"


# -- shadow scopes -----------------------------------------------------------------------------------------


async def test_a_call_only_a_shadow_scope_would_deny_is_forwarded_and_recorded_with_that_scope(tmp_path: Path) -> None:
    async with as_agent(tmp_path, "editor") as (fw, decisions):
        outside = await fw.client.call_tool("files__write_file", {"path": "/tmp/x"})
        shadow_denied = decisions.last()
        inside = await fw.client.call_tool("files__write_file", {"path": "/srv/drafts/x"})
        allowed = decisions.last()

        assert forwarded(fw) == [("write_file", {"path": "/tmp/x"}), ("write_file", {"path": "/srv/drafts/x"})]
    assert not outside.is_error and not inside.is_error
    assert (shadow_denied.outcome, shadow_denied.scope, shadow_denied.argument) == (
        "shadow-deny",
        "drafts-trial",
        "path",
    )
    assert (allowed.outcome, allowed.scope) == ("allow", "drafts-trial")


async def test_an_enforced_scope_still_denies_beside_a_shadow_scope(tmp_path: Path) -> None:
    async with as_agent(tmp_path, "reviewer") as (fw, decisions):
        denied = await fw.client.call_tool("files__read_file", {"path": "/etc/passwd"})  # both scopes would deny
        decision = decisions.last()
        allowed = await fw.client.call_tool("files__read_file", {"path": "/srv/docs/private/a"})  # docs allows

        assert forwarded(fw) == [("read_file", {"path": "/srv/docs/private/a"})]
    assert denied.is_error and text(denied).startswith("Denied by mcp-firewall:")
    assert (decision.outcome, decision.scope) == ("deny", "docs")
    assert not allowed.is_error


async def test_a_tool_only_a_shadow_scope_grants_keeps_its_own_schema_and_its_input_is_still_checked(
    tmp_path: Path,
) -> None:
    async with as_agent(tmp_path, "editor") as (fw, decisions):
        listed = {t.name: t.input_schema for t in (await fw.client.list_tools()).tools}
        refused = await fw.client.call_tool("files__write_file", {"path": "/srv/drafts/x", "mode": "0777"})

        assert forwarded(fw) == []
    assert listed["files__write_file"] == {"type": "object", "properties": {"path": {"type": "string"}}}
    assert refused.is_error and (decisions.last().outcome, decisions.last().argument) == ("deny", "mode")


# -- end to end: `mcp-firewall run` with an audit log, then `audit query` -----------------------------------


@pytest.mark.slow
async def test_shadow_denials_reach_the_real_upstream_and_the_audit_log_summarises_what_would_break(
    tmp_path: Path,
) -> None:
    server = Path(sys.executable).parent / "mcp-server-time"
    if not server.exists():
        pytest.skip("mcp-server-time is not installed in the venv")
    (tmp_path / "scopes.yaml").write_text(
        """
servers:
  time: {read: [get_current_time, convert_time]}
scopes:
  utc-only:
    allow:
      - tools: [time__get_current_time]
        args: {timezone: {enum: [UTC]}}
agents:
  clock: {scopes: [utc-only], mode: shadow}
""",
        encoding="utf-8",
    )
    firewall_file = {
        "upstreams": {"time": {"command": str(server), "args": ["--local-timezone", "UTC"]}},
        "scopes": ["scopes.yaml"],
        "audit": {"path": "audit.jsonl", "fsync": "always"},
    }
    config = tmp_path / "firewall.yaml"
    config.write_text(yaml.safe_dump(firewall_file), encoding="utf-8")

    async with connect(config, "clock") as client:
        paris = await client.call_tool("time__get_current_time", {"timezone": "Europe/Paris"})
        tokyo = await client.call_tool("time__get_current_time", {"timezone": "Asia/Tokyo"})
        converted = await client.call_tool(
            "time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        utc = await client.call_tool("time__get_current_time", {"timezone": "UTC"})

    assert not any(result.is_error for result in (paris, tokyo, converted, utc))
    assert '"timezone": "Europe/Paris"' in text(paris)  # the real upstream answered
    audit = tmp_path / "audit.jsonl"
    decisions = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    decisions = [(r["tool"], r["decision"]) for r in decisions if r["kind"] == "decision" and r.get("tool")]
    assert decisions == [
        ("time__get_current_time", "shadow-deny"),
        ("time__get_current_time", "shadow-deny"),
        ("time__convert_time", "shadow-deny"),
        ("time__get_current_time", "allow"),
    ]
    query = [sys.executable, "-m", "mcp_firewall", "audit", "query", str(audit), "--decision", "shadow-deny"]
    summary = (await anyio.run_process([*query, "--summary"])).stdout.decode()
    assert "clock" in summary and "time__get_current_time" in summary and "time__convert_time" in summary


@asynccontextmanager
async def connect(config: Path, agent: str) -> AsyncIterator[Client]:
    command = [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--agent", agent]
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_FIREWALL_")}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(REPO_ROOT))
    with (config.parent / "firewall.stderr").open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=30) as client:
            yield client
