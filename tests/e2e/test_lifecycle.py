"""The firewall process over its life: upstreams that crash or never start, shutdown, refusals, hot reload.

Most upstreams here are `crashy_upstream.py` (starts in milliseconds) behind the recording wrapper,
whose pid file lets a test check in /proc that no upstream process outlives the firewall.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.types import ServerNotification, ToolListChangedNotification

from .conftest import (
    CRASHY,
    REPO_ROOT,
    FirewallConfig,
    RawFirewall,
    alive,
    connect,
    firewall_env,
    node_peer,
    python_peer,
    text_of,
    wait_until,
    wait_until_async,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TWO_UPSTREAMS = """
servers:
  crashy: {read: [echo], destructive: [crash]}
  steady: {read: [echo], destructive: [crash]}
scopes:
  both:
    allow:
      - tools: [crashy:read, crashy__crash, steady:read]
agents:
  A: {scopes: [both]}
"""


class ListChanges:
    """A message handler that counts notifications/tools/list_changed."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, message: ServerNotification | Exception) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.count += 1


async def tool_names(client: Any) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


def crashy_pair(config: FirewallConfig) -> FirewallConfig:
    marker = str(config.root / "crashed.marker")
    config.upstream("crashy", sys.executable, str(CRASHY), env={"CRASHY_MARKER": marker})
    config.upstream("steady", sys.executable, str(CRASHY))
    return config.write(TWO_UPSTREAMS)


# -- upstream failures ---------------------------------------------------------------------------------------


async def test_an_upstream_crash_fails_its_call_hides_its_tools_and_it_comes_back(
    firewall_config: FirewallConfig,
) -> None:
    changes = ListChanges()
    async with connect(crashy_pair(firewall_config), message_handler=changes) as client:
        assert await tool_names(client) == {"crashy__echo", "crashy__crash", "steady__echo"}
        first_pid = firewall_config.recorded["crashy"].pids()[1]

        with pytest.raises(MCPError) as caught:
            await client.call_tool("crashy__crash", {})
        assert caught.value.error.code == -32603
        assert "crashy" in caught.value.error.message and "exited with code 3" in caught.value.error.message

        await wait_until_async(lambda: changes.count >= 1, within=10)
        assert await tool_names(client) == {"steady__echo"}  # the crashed upstream's tools are gone...
        assert text_of(await client.call_tool("steady__echo", {"text": "still here"})) == "still here"

        await wait_until_async(lambda: changes.count >= 2, within=15)  # ...until it has restarted
        assert await tool_names(client) == {"crashy__echo", "crashy__crash", "steady__echo"}
        assert text_of(await client.call_tool("crashy__echo", {"text": "back"})) == "back"

    assert firewall_config.recorded["crashy"].pids()[3] != first_pid
    assert "crashy" in firewall_config.stderr() and "restarting" in firewall_config.stderr()


async def test_an_upstream_whose_command_does_not_exist_leaves_the_others_working(
    firewall_config: FirewallConfig,
) -> None:
    firewall_config.upstream("ghost", "/nonexistent/mcp-server-ghost", record=False)
    firewall_config.upstream("steady", sys.executable, str(CRASHY))
    firewall_config.write(
        """
servers:
  steady: {read: [echo]}
scopes:
  s: {allow: [{tools: ["ghost:read", "ghost__*", "steady:read"]}]}
agents:
  A: {scopes: [s]}
"""
    )
    async with connect(firewall_config) as client:
        assert await tool_names(client) == {"steady__echo"}
        assert text_of(await client.call_tool("steady__echo", {"text": "hi"})) == "hi"
        with pytest.raises(MCPError) as caught:
            await client.call_tool("ghost__anything", {})
        assert caught.value.error.code == -32602

    assert "ghost" in firewall_config.stderr() and "could not be started" in firewall_config.stderr()


# -- shutdown: no process outlives the firewall ------------------------------------------------------------


def real_upstreams(config: FirewallConfig) -> FirewallConfig:
    config.upstream("time", python_peer("mcp-server-time"))
    config.upstream("everything", node_peer("mcp-server-everything"))
    return config.write(
        """
servers:
  time: {read: [get_current_time]}
  everything: {read: [echo]}
scopes:
  s: {allow: [{tools: ["time:read", "everything:read"]}]}
agents:
  A: {scopes: [s]}
"""
    )


def upstream_pids(config: FirewallConfig) -> list[int]:
    """The wrapper and server pids of every upstream, once each has started."""

    def all_started() -> list[int] | None:
        pids = [pid for recorded in config.recorded.values() for pid in recorded.pids()]
        return pids if len(pids) == 2 * len(config.recorded) else None

    result: list[int] = wait_until(all_started)
    return result


@pytest.mark.parametrize("stop", ["client disconnects", "SIGTERM"])
def test_no_upstream_process_outlives_the_firewall(
    firewall_config: FirewallConfig, raw_firewall: Callable[..., RawFirewall], stop: str
) -> None:
    firewall = raw_firewall(real_upstreams(firewall_config))
    firewall.initialize()
    assert {t["name"] for t in firewall.request("tools/list")["result"]["tools"]} == {
        "time__get_current_time",
        "everything__echo",
    }
    pids = upstream_pids(firewall_config)
    assert all(alive(pid) for pid in pids)

    if stop == "SIGTERM":
        firewall.process.send_signal(signal.SIGTERM)
        assert firewall.process.wait(timeout=15) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    else:
        assert firewall.close() == 0

    try:
        wait_until(lambda: not any(alive(pid) for pid in pids), within=5)
    except AssertionError:
        pytest.fail(f"upstream processes outlived the firewall: {[pid for pid in pids if alive(pid)]}")


# -- refusing to start ------------------------------------------------------------------------------------------


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_firewall", *arguments],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        cwd=REPO_ROOT,
        env=firewall_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_run_without_an_agent_exits_2_and_says_how_to_name_one(firewall_config: FirewallConfig) -> None:
    done = run_cli("run", "--config", str(crashy_pair(firewall_config).path))

    assert done.returncode == 2
    assert done.stdout == ""
    assert "--agent" in done.stderr and "MCP_FIREWALL_AGENT" in done.stderr
    assert not firewall_config.recorded["crashy"].pids(), "no upstream is started"


def test_run_for_an_unknown_agent_refuses_to_start_with_exit_2(firewall_config: FirewallConfig) -> None:
    done = run_cli("run", "--config", str(crashy_pair(firewall_config).path), "--agent", "nobody")

    assert done.returncode == 2  # cli.py: a refusal to start is a usage error
    assert done.stdout == ""
    assert "refusing to start" in done.stderr and "unknown agent 'nobody'" in done.stderr
    assert not firewall_config.recorded["crashy"].pids(), "no upstream is started"


def test_the_real_servers_example_and_its_scope_files_validate() -> None:
    done = run_cli("validate", "--config", str(REPO_ROOT / "examples" / "real-servers" / "firewall.yaml"))

    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


# -- hot reload -------------------------------------------------------------------------------------------------

POLICY = """
servers:
  crashy: {{read: [echo], destructive: [crash]}}
scopes:
  s:
    allow:
      - tools: [{tools}]
        args:
          text: {{pattern: "{pattern}"}}
agents:
  A: {{scopes: [s]}}
"""


def edit(path: Path, text: str) -> None:
    """Rewrite a scope file so that its modification time surely changes."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns == before:  # a coarse clock: move it on by hand
        later = before + 10_000_000
        os.utime(path, ns=(later, later))


async def test_an_edited_scope_file_takes_effect_within_a_second_and_an_invalid_edit_keeps_the_old_policy(
    firewall_config: FirewallConfig,
) -> None:
    firewall_config.upstream("crashy", sys.executable, str(CRASHY))
    firewall_config.write(POLICY.format(tools="crashy__echo", pattern="[a-z]+"))
    changes = ListChanges()
    async with connect(firewall_config, message_handler=changes) as client:

        async def echo(text: str) -> bool:
            """True when the call was allowed."""
            result = await client.call_tool("crashy__echo", {"text": text})
            return not text_of(result).startswith("Denied by mcp-firewall")

        assert await tool_names(client) == {"crashy__echo"}
        assert await echo("hello") and not await echo("123")

        edit(firewall_config.scope_path, POLICY.format(tools="crashy__echo, crashy__crash", pattern="[0-9]+"))
        edited = time.monotonic()
        await anyio.sleep(1.0)
        assert await echo("123") and not await echo("hello")
        await wait_until_async(lambda: changes.count >= 1, within=5)
        assert await tool_names(client) == {"crashy__echo", "crashy__crash"}
        assert time.monotonic() - edited < 5

        edit(firewall_config.scope_path, POLICY.format(tools="crashy__echo", pattern="[0-9]+") + "\nbogus_key: 1\n")
        await anyio.sleep(1.0)
        assert await echo("123") and not await echo("hello")  # the last good policy stays in force
        assert await tool_names(client) == {"crashy__echo", "crashy__crash"}
        assert changes.count == 1

    assert "invalid" in firewall_config.stderr() and "bogus_key" in firewall_config.stderr()
