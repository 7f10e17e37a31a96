"""Real clients against the firewall in front of mcp-server-time, policed by scopes/time.yaml.

The agent is `scheduler` from the repository's own scopes/time.yaml: time:read, with every time zone
argument constrained to an IANA-like name. Also the raw stdio contract: refused input gets a JSON-RPC
error, the session goes on, and stdout carries nothing but JSON-RPC lines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import (
    ERAS,
    REPO_ROOT,
    FirewallConfig,
    RawFirewall,
    connect,
    firewall_env,
    python_peer,
    text_of,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

AGENT = "scheduler"
TIME_SCOPES = REPO_ROOT / "scopes" / "time.yaml"
INSPECTOR_TIMEOUT = 60


@pytest.fixture
def time_config(firewall_config: FirewallConfig) -> FirewallConfig:
    firewall_config.upstream("time", python_peer("mcp-server-time"), "--local-timezone", "UTC")
    return firewall_config.write(scope_files=[TIME_SCOPES], limits={"max_message_bytes": 65536})


def inspector(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the MCP Inspector CLI (0.15.0, from node_modules) once; its stdout is the JSON answer."""
    npx = shutil.which("npx")
    if npx is None or not (REPO_ROOT / "node_modules" / "@modelcontextprotocol" / "inspector").exists():
        pytest.skip("the Inspector CLI is not installed: run `make venv` (npm ci) first")
    return subprocess.run(
        [npx, "--no-install", "@modelcontextprotocol/inspector", "--cli", *arguments],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=INSPECTOR_TIMEOUT,
        cwd=REPO_ROOT,
        env={**firewall_env(), **(env or {})},
        check=False,
    )


# -- the MCP Inspector CLI ---------------------------------------------------------------------------------


def test_inspector_cli_lists_the_agents_tools_with_the_agent_named_by_environment(time_config: FirewallConfig) -> None:
    identity = ["-e", f"MCP_FIREWALL_CONFIG={time_config.path}", "-e", f"MCP_FIREWALL_AGENT={AGENT}"]

    done = inspector(*identity, sys.executable, "--", "-m", "mcp_firewall", "run", "--method", "tools/list")

    assert done.returncode == 0, done.stderr + time_config.stderr()
    tools = json.loads(done.stdout)["tools"]
    assert sorted(tool["name"] for tool in tools) == ["time__convert_time", "time__get_current_time"]


def test_inspector_cli_calls_a_tool_through_the_firewall(time_config: FirewallConfig) -> None:
    command, *arguments = time_config.command(agent=AGENT)  # `--` keeps --config from the Inspector's own
    call = ["--method", "tools/call", "--tool-name", "time__get_current_time", "--tool-arg", "timezone=UTC"]

    done = inspector(command, "--", *arguments, *call)

    assert done.returncode == 0, done.stderr + time_config.stderr()
    result = json.loads(done.stdout)
    assert result["isError"] is False
    assert result["structuredContent"]["timezone"] == "UTC"


# -- the SDK client, both eras ---------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_sdk_client_lists_calls_and_is_denied_in_both_eras(time_config: FirewallConfig, era: str) -> None:
    async with connect(time_config, agent=AGENT, mode=era) as client:
        expected_version = "2025-11-25" if era == "legacy" else "2026-07-28"
        assert client.protocol_version == expected_version
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        allowed = await client.call_tool("time__get_current_time", {"timezone": "Europe/London"})
        converted = await client.call_tool(
            "time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        denied = await client.call_tool("time__get_current_time", {"timezone": "../../etc/localtime"})
        bad_time = await client.call_tool(
            "time__convert_time", {"source_timezone": "UTC", "time": "25:99", "target_timezone": "UTC"}
        )

    assert names == ["time__convert_time", "time__get_current_time"]
    assert not allowed.is_error and (allowed.structured_content or {})["timezone"] == "Europe/London"
    assert not converted.is_error and (converted.structured_content or {})["target"]["timezone"] == "Asia/Tokyo"
    assert denied.is_error and text_of(denied).startswith("Denied by mcp-firewall:")
    assert (denied.meta or {})["mcp_firewall/denial"]["argument"] == "timezone"
    assert bad_time.is_error and (bad_time.meta or {})["mcp_firewall/denial"]["argument"] == "time"
    calls = [c["params"]["arguments"] for c in time_config.recorded["time"].tool_calls()]
    assert len(calls) == 2 and all("../" not in json.dumps(arguments) for arguments in calls)


# -- raw stdio: what only a hand-written client can send ---------------------------------------------------

CALL = {"name": "time__get_current_time", "arguments": {"timezone": "UTC"}}


def call_line(request_id: int, arguments: str = '{"timezone":"UTC"}') -> bytes:
    """A tools/call line, written by hand so that it can carry what no JSON library would write."""
    params = f'{{"name":"time__get_current_time","arguments":{arguments}}}'
    return f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call","params":{params}}}\n'.encode()


def assert_error(message: dict[str, Any], code: int, request_id: Any = None) -> None:
    assert message.get("id", "absent") == request_id, message
    assert message["error"]["code"] == code, message
    assert "result" not in message


def test_refused_input_gets_json_rpc_errors_and_the_session_goes_on(
    time_config: FirewallConfig, raw_firewall: Callable[..., RawFirewall]
) -> None:
    firewall = raw_firewall(time_config, AGENT, env={"MCP_FIREWALL_LOG_LEVEL": "debug"})  # as chatty as it gets
    firewall.send_bytes(b"this is not json\n")  # before initialize, too
    assert_error(firewall.receive(), -32700)
    assert "serverInfo" in firewall.initialize()["result"]

    refused: list[tuple[str, bytes, int]] = [
        ("truncated JSON", b'{"jsonrpc":"2.0","id":10,"method":\n', -32700),
        ("duplicate key", call_line(11, '{"timezone":"UTC","timezone":"../../etc/x"}'), -32700),
        ("duplicate id", b'{"jsonrpc":"2.0","id":12,"id":13,"method":"ping"}\n', -32700),
        ("batch", b"[" + call_line(14).strip() + b"," + call_line(15).strip() + b"]\n", -32600),
        ("oversized", call_line(16, json.dumps({"timezone": "UTC", "pad": "x" * 70_000})), -32700),
        ("invalid UTF-8", call_line(17).replace(b'"UTC"', b'"UT\xffC"'), -32700),
        ("lone surrogate", call_line(18, '{"timezone":"\\ud800"}'), -32700),
        ("NaN", call_line(19, '{"timezone":NaN}'), -32700),
    ]
    for case, line, code in refused:
        firewall.send_bytes(line)
        message = firewall.receive()
        assert_error(message, code)  # the id of refused input cannot be trusted: it is null
        assert message["error"]["message"], case

    assert firewall.request("no/such/method")["error"]["code"] == -32601
    answer = firewall.request("tools/call", CALL)  # the session goes on
    assert answer["result"]["isError"] is False

    assert [c["params"]["arguments"] for c in time_config.recorded["time"].tool_calls()] == [{"timezone": "UTC"}]
    assert firewall.close() == 0
    assert "DEBUG" in time_config.stderr() or "debug" in time_config.stderr().lower()


def is_json_rpc(message: Any) -> bool:
    """A JSON-RPC 2.0 response (id + result or error), request (id + method) or notification (method)."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "method" in message:
        return isinstance(message["method"], str) and not ({"result", "error"} & message.keys())
    return "id" in message and len({"result", "error"} & message.keys()) == 1


def test_stdout_carries_only_json_rpc_lines(
    time_config: FirewallConfig, raw_firewall: Callable[..., RawFirewall]
) -> None:
    env = {"MCP_FIREWALL_LOG_LEVEL": "debug", "PYTHONWARNINGS": "always"}
    firewall = raw_firewall(time_config, AGENT, env=env)
    firewall.initialize()
    firewall.request("tools/list")
    firewall.request("tools/call", CALL)
    firewall.request("tools/call", {"name": "time__get_current_time", "arguments": {"timezone": "Not/A_Zone"}})
    firewall.send_bytes(b"\x00\x01garbage\n{}\n[]\n")
    for _ in range(3):
        firewall.receive()
    assert firewall.close() == 0

    assert firewall.lines, "the firewall wrote nothing"
    for line in firewall.lines:
        assert line.endswith(b"\n") and b"\n" not in line[:-1], line
        assert is_json_rpc(json.loads(line)), line
    assert time_config.stderr().strip(), "diagnostics belong on stderr"
