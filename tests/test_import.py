"""`mcp-firewall import FILE`: real client configs (Claude Desktop, Cursor, VS Code) become a firewall.

The fixtures under tests/fixtures/import are written as each client documents them (`uvx`, `npx -y`,
`docker`, `${workspaceFolder}`, `${env:...}`, `${input:...}`, comments). The servers are the real ones:
`npx` finds the Node servers in node_modules, and a `uvx` shim runs the PyPI servers from the venv (the
tests run offline). An upstream that cannot be reached (no Docker daemon, nothing on port 9) is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import yaml
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_firewall.commands.importer import read_client_config

FIXTURES = Path(__file__).parent / "fixtures" / "import"
REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def servers_on_path(tmp_path: Path) -> dict[str, str]:
    """The environment import runs in: `uvx NAME ARGS` runs the venv's NAME; npx finds node_modules."""
    if shutil.which("npx") is None or not (REPO_ROOT / "node_modules" / ".bin" / "mcp-server-memory").exists():
        pytest.skip("the Node MCP servers are not installed (make venv)")
    if not (VENV_BIN / "mcp-server-time").exists():
        pytest.skip("the PyPI MCP servers are not installed in the venv")
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "uvx").write_text(f'#!/bin/sh\nname=$1; shift\nexec "{VENV_BIN}/$name" "$@"\n', encoding="utf-8")
    (shims / "uvx").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_FIREWALL_")}
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_import(source: Path, output: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mcp_firewall", "import", str(source), "--output", str(output), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT, check=False)


def project(tmp_path: Path, name: str) -> Path:
    """A copy of a fixture folder, so that `${workspaceFolder}` is a folder of this test's own."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def written(output: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    firewall = yaml.safe_load((output / "firewall.yaml").read_text(encoding="utf-8"))
    scope_text = (output / "scopes" / "imported.yaml").read_text(encoding="utf-8")
    return firewall, yaml.safe_load(scope_text), scope_text


def snippet(stdout: str) -> Any:
    return json.loads(stdout[stdout.index("\n{") : stdout.rindex("}") + 1])


# -- Claude Desktop ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_claude_desktop_config_becomes_a_firewall_whose_reader_sees_only_read_tools(
    tmp_path: Path, servers_on_path: dict[str, str]
) -> None:
    output = tmp_path / "out"
    source = project(tmp_path, "claude") / "claude_desktop_config.json"
    result = await anyio.to_thread.run_sync(run_import, source, output, servers_on_path)
    assert result.returncode == 0, result.stderr

    firewall, scopes, scope_text = written(output)
    assert list(firewall["upstreams"]) == ["time", "filesystem", "memory", "github"]
    assert firewall["upstreams"]["time"] == {
        "command": "uvx",
        "args": ["mcp-server-time", "--local-timezone=Europe/Paris"],
    }
    assert firewall["upstreams"]["github"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}
    assert "ghp_" not in (output / "firewall.yaml").read_text(encoding="utf-8")
    assert scopes["servers"]["time"] == {"read": ["get_current_time", "convert_time"]}
    assert scopes["servers"]["memory"]["destructive"] == ["delete_entities", "delete_observations", "delete_relations"]
    assert scopes["servers"]["filesystem"]["write"] == ["create_directory"]
    assert scopes["servers"]["github"] == {}
    assert "      - get_current_time  # review: readOnlyHint: true, destructiveHint: false" in scope_text.splitlines()
    assert "  # REVIEW: exited with code" in scope_text or "  # REVIEW: failed" in scope_text
    assert scopes["agents"] == {
        "reader": {"description": "Read-only starter agent (from mcp-firewall import)", "scopes": ["read-only"]}
    }
    assert scopes["scopes"]["read-only"]["allow"] == [
        {"tools": ["time:read", "filesystem:read", "memory:read", "github:read"]}
    ]

    entry = snippet(result.stdout)["mcpServers"]["mcp-firewall"]
    assert entry["args"][-5:] == ["run", "--config", str(output / "firewall.yaml"), "--agent", "reader"]
    assert entry["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "<the value from your current file>"}

    env = {**servers_on_path, "GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}
    command = [sys.executable, "-m", "mcp_firewall", "validate", "--config", str(output / "firewall.yaml")]
    validate = await anyio.run_process(command, env=env, check=False)
    assert (validate.returncode, validate.stdout) == (0, b"")
    async with connect(output / "firewall.yaml", "reader", env) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        with pytest.raises(MCPError):
            await client.call_tool("memory__delete_entities", {"entityNames": ["x"]})
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
    assert {"time__get_current_time", "filesystem__read_text_file", "memory__read_graph"} <= names
    assert not names & {"memory__create_entities", "memory__delete_entities", "filesystem__write_file"}
    assert not now.is_error


# -- Cursor ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cursor_project_config_keeps_urls_env_references_and_the_workspace(
    tmp_path: Path, servers_on_path: dict[str, str]
) -> None:
    workspace = project(tmp_path, "cursor-project")
    subprocess.run(["git", "init", "-q", str(workspace)], check=True, timeout=30)  # a project, as Cursor opens it
    output = tmp_path / "out"

    result = run_import(workspace / ".cursor" / "mcp.json", output, servers_on_path, "--timeout", "30")

    assert result.returncode == 0, result.stderr
    firewall, scopes, _ = written(output)
    upstreams = firewall["upstreams"]
    assert list(upstreams) == ["git", "everything-demo", "docs-search", "tickets"]
    assert upstreams["git"]["args"] == ["mcp-server-git", "--repository", str(workspace)]
    assert upstreams["git"]["cwd"] == str(workspace)
    assert upstreams["docs-search"] == {"url": "http://127.0.0.1:9/sse", "transport": "sse"}
    assert upstreams["tickets"] == {
        "url": "http://127.0.0.1:9/mcp",
        "headers": {"Authorization": "Bearer ${TICKETS_TOKEN}"},
    }
    assert scopes["servers"]["git"]["destructive"] == ["git_reset"]
    assert "git_status" in scopes["servers"]["git"]["read"] and "git_commit" in scopes["servers"]["git"]["write"]
    assert "echo" in scopes["servers"]["everything-demo"]["read"]
    assert scopes["servers"]["docs-search"] == scopes["servers"]["tickets"] == {}
    assert "  everything-demo: renamed from 'Everything_Demo'" in result.stdout
    assert list(snippet(result.stdout)) == ["mcpServers"]


# -- VS Code -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_vscode_config_with_comments_inputs_and_types_is_imported(
    tmp_path: Path, servers_on_path: dict[str, str]
) -> None:
    workspace = project(tmp_path, "vscode-project")
    output = tmp_path / "out"

    result = run_import(workspace / ".vscode" / "mcp.json", output, servers_on_path)

    assert result.returncode == 0, result.stderr
    firewall, scopes, _ = written(output)
    upstreams = firewall["upstreams"]
    assert list(upstreams) == ["fetch", "time", "memory", "playwright", "legacy-sse"]
    assert upstreams["memory"]["env"] == {"MEMORY_FILE_PATH": f"{workspace}/.memory.jsonl"}
    assert upstreams["playwright"]["headers"] == {"Authorization": "Bearer ${PLAYWRIGHT_TOKEN}"}
    assert upstreams["legacy-sse"]["transport"] == "sse"
    assert scopes["servers"]["fetch"] == {"read": ["fetch"]}
    assert scopes["servers"]["time"] == {"read": ["get_current_time", "convert_time"]}
    assert "playwright: not started: it needs ${input:playwright-token}, which only VS Code asks for" in result.stdout
    client = snippet(result.stdout)
    assert client["inputs"][0]["id"] == "playwright-token"
    assert client["servers"]["mcp-firewall"]["type"] == "stdio"
    assert client["servers"]["mcp-firewall"]["env"] == {"PLAYWRIGHT_TOKEN": "${input:playwright-token}"}


# -- reading and refusing ------------------------------------------------------------------------------------


def test_names_variables_and_credentials_are_translated_without_starting_anything(tmp_path: Path) -> None:
    source = tmp_path / "mcp.json"
    source.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "My Server_1": {
                        "command": "srv",
                        "args": ["${userHome}/data", "literal ${brace"],
                        "env": {"API_KEY": "k-1"},
                    },
                    "my-server-1": {"command": "srv", "env": {"LEVEL": "${env:LOG_LEVEL}"}},
                    "off": {"command": "srv", "disabled": True},
                }
            }
        ),
        encoding="utf-8",
    )

    config = read_client_config(source)

    assert [(s.source, s.name) for s in config.servers] == [
        ("My Server_1", "my-server-1"),
        ("my-server-1", "my-server-1-2"),
    ]
    assert config.servers[0].entry == {
        "command": "srv",
        "args": ["${HOME}/data", "literal $${brace"],
        "env": {"API_KEY": "${API_KEY}"},
    }
    assert config.servers[1].entry["env"] == {"LEVEL": "${LOG_LEVEL}"}
    assert config.client_env == {"API_KEY": "k-1"}
    assert config.skipped == ["off: disabled in mcp.json"]


def test_import_refuses_to_overwrite_a_firewall_file(tmp_path: Path) -> None:
    (tmp_path / "firewall.yaml").write_text("upstreams: {}\n", encoding="utf-8")
    source = FIXTURES / "claude" / "claude_desktop_config.json"

    result = run_import(source, tmp_path, dict(os.environ), "--no-connect")

    assert result.returncode == 2
    assert "already exist; pass --force to overwrite" in result.stderr


@asynccontextmanager
async def connect(config: Path, agent: str, env: dict[str, str]) -> AsyncIterator[Client]:
    command = [sys.executable, "-m", "mcp_firewall", "run", "--config", str(config), "--agent", agent]
    params = StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(REPO_ROOT))
    with (config.parent / "firewall.stderr").open("a", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=30) as client:
            yield client
