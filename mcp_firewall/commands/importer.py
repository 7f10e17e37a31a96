"""`mcp-firewall import FILE`: an MCP client's server list → a firewall file and a starter scope file.

Reads the `mcpServers` JSON of Claude Desktop (and Claude Code's `.mcp.json`), Cursor (`.cursor/mcp.json`,
which may give a `url`) or VS Code (`.vscode/mcp.json` or its settings: `servers` with `type` stdio, http
or sse, `inputs`, comments and trailing commas). Each server is started (or connected to) once and its
tools are classified from their annotations, marked for review; one read-only agent is defined. What
the client wrote is kept, except credentials: a literal secret becomes a `${VAR}` that the client passes
to the firewall. Then it prints how to point the client at the firewall instead (docs/pinning.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_firewall.commands.common import UsageError

__all__ = ["ClientConfig", "ImportedServer", "read_client_config", "register"]

CLIENTS = {"claude": "Claude Desktop", "cursor": "Cursor", "vscode": "VS Code"}
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SECRET_KEY = re.compile(r"token|secret|passw|api[_-]?key|apikey|auth|credential|private[_-]?key|access[_-]?key", re.I)
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_OURS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?::-.*)?", re.S)  # ${NAME} and ${NAME:-default} mean the same to us
_HANDLED = {"type", "transport", "command", "args", "env", "cwd", "url", "headers", "disabled"}
_URL_KINDS = ("http", "streamable-http", "streamablehttp", "sse")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "import",
        help="turn an mcpServers JSON (Claude Desktop, Cursor, VS Code) into a firewall file and scopes",
        description="Write firewall.yaml and scopes/imported.yaml from an MCP client's server list. Each server "
        "is asked for its tools once, to classify them from their annotations (marked for review).",
    )
    parser.add_argument("file", help="claude_desktop_config.json, .cursor/mcp.json, .vscode/mcp.json, ...")
    parser.add_argument("--output", "-o", default=".", help="the folder to write into (default: here)")
    parser.add_argument("--agent", default="reader", help="the read-only agent to define (default: reader)")
    parser.add_argument("--client", choices=sorted(CLIENTS), help="the client the file is for (default: guessed)")
    parser.add_argument("--force", action="store_true", help="overwrite firewall.yaml and scopes/imported.yaml")
    parser.add_argument("--no-connect", action="store_true", help="start no server; classify no tool")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the servers (30)")
    parser.set_defaults(command=_import)


# -- the client's file -------------------------------------------------------------------------------------


@dataclass
class ImportedServer:
    source: str  # its name in the client's file
    name: str  # its upstream name
    entry: dict[str, Any]  # its firewall.yaml entry (credentials as ${VAR}; `$${` for a literal `${`)
    notes: list[str] = field(default_factory=list)


@dataclass
class ClientConfig:
    client: str  # claude | cursor | vscode
    path: Path
    servers: list[ImportedServer] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    client_env: dict[str, str] = field(default_factory=dict)  # what the client passes: VAR → value or ${input:id}
    inputs: list[Any] = field(default_factory=list)  # VS Code `inputs`, kept for the firewall's own entry
    workspace: Path | None = None


def read_client_config(path: Path, client: str | None = None) -> ClientConfig:
    """Parse a client's file and translate every server it lists into a firewall upstream."""
    try:
        data = json.loads(_strip_jsonc(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read as JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("mcp"), dict):  # VS Code settings.json
        data = data["mcp"]
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f"{path}: no `mcpServers` (Claude Desktop, Cursor) or `servers` (VS Code) object")
    kind = client or ("vscode" if "servers" in data else "cursor" if ".cursor" in path.parts else "claude")
    workspace = path.parent.parent.resolve() if path.parent.name in (".vscode", ".cursor") else None
    config = ClientConfig(kind, path, inputs=list(data.get("inputs") or []), workspace=workspace)
    taken: set[str] = set()
    for source, server in servers.items():
        if not isinstance(server, dict):
            config.skipped.append(f"{source}: not an object")
        elif server.get("disabled") is True:
            config.skipped.append(f"{source}: disabled in {path.name}")
        elif (imported := _server(config, source, _upstream_name(source, taken), server)) is not None:
            config.servers.append(imported)
    return config


def _server(config: ClientConfig, source: str, name: str, server: dict[str, Any]) -> ImportedServer | None:
    imported = ImportedServer(source, name, {})
    kind = str(server.get("type") or server.get("transport") or "").lower().replace("_", "-")
    text = _Text(config, imported)
    if "command" in server and kind in ("", "stdio"):
        imported.entry["command"] = text(server["command"])
        imported.entry["args"] = [text(arg) for arg in server.get("args") or []]
        imported.entry["env"] = {k: text.secret(k, k, v) for k, v in (server.get("env") or {}).items()}
        cwd = server.get("cwd") or config.workspace  # workspace servers start in the workspace folder
        imported.entry["cwd"] = text(cwd) if cwd else None
    elif "url" in server and kind in ("", *_URL_KINDS):
        imported.entry["url"] = text(server["url"])
        if kind == "sse" or (not kind and str(server["url"]).rstrip("/").endswith("/sse")):
            imported.entry["transport"] = "sse"
        prefix = _variable_name(name)
        headers = server.get("headers") or {}
        imported.entry["headers"] = {k: text.secret(k, f"{prefix}_{_variable_name(k)}", v) for k, v in headers.items()}
    else:
        config.skipped.append(f"{source}: neither a `command` nor a `url` that the firewall can serve")
        return None
    imported.entry = {key: value for key, value in imported.entry.items() if value not in (None, [], {})}
    imported.notes += [f"`{key}` is not imported" for key in server if key not in _HANDLED]
    if source != name:
        imported.notes.append(f"renamed from {source!r} (upstream names are lower-case letters, digits and '-')")
    return imported


class _Text:
    """Translates the client's strings: its `${...}` variables into the firewall's, credentials into `${VAR}`."""

    def __init__(self, config: ClientConfig, imported: ImportedServer) -> None:
        self.config = config
        self.imported = imported

    def __call__(self, value: Any) -> str:
        text = str(value)
        parts, position = [], 0
        for match in _VARIABLE.finditer(text):
            parts += [text[position : match.start()].replace("${", "$${"), self._variable(match.group(1))]
            position = match.end()
        return "".join([*parts, text[position:].replace("${", "$${")])

    def secret(self, key: str, variable: str, value: Any) -> str:
        """A literal credential is not copied: it becomes `${VARIABLE}`, which the client passes to the firewall."""
        text = str(value)
        if not _SECRET_KEY.search(key) or "${" in text:
            return self(text)
        self.config.client_env[variable] = text
        self.imported.notes.append(f"{key}: not copied; written as ${{{variable}}}, which the client passes on")
        return f"${{{variable}}}"

    def _variable(self, body: str) -> str:
        scheme, _, name = body.partition(":")
        workspace = self.config.workspace
        if scheme == "env" and name:
            return f"${{{name}}}"
        if scheme == "input" and name:
            variable = _variable_name(name)
            self.config.client_env[variable] = f"${{input:{name}}}"
            self.imported.notes.append(f"${{input:{name}}}: written as ${{{variable}}}, which the client passes on")
            return f"${{{variable}}}"
        if body in ("workspaceFolder", "workspaceFolderBasename") and workspace is not None:
            return (str(workspace) if body == "workspaceFolder" else workspace.name).replace("${", "$${")
        if body == "userHome":
            return "${HOME}"
        if body in ("pathSeparator", "/"):
            return "/"
        if _OURS.fullmatch(body):
            return f"${{{body}}}"
        self.imported.notes.append(f"${{{body}}} cannot be expanded by the firewall: kept as written")
        return f"$${{{body}}}"


def _variable_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_") or "VALUE"


def _upstream_name(source: str, taken: set[str]) -> str:
    base = re.sub(r"^[^a-z]+", "", re.sub(r"[^a-z0-9]+", "-", source.lower()))[:28].strip("-") or "server"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    taken.add(name)
    return name


def _strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas (VS Code's files) → JSON; strings are left alone."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == '"':
            end = index + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[index : end + 1])
            index = end + 1
        elif text.startswith("//", index):
            newline = text.find("\n", index)
            index = newline if newline >= 0 else len(text)
        elif text.startswith("/*", index):
            close = text.find("*/", index + 2)
            index = close + 2 if close >= 0 else len(text)
        else:
            out.append(text[index])
            index += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


# -- asking the servers for their tools ---------------------------------------------------------------------


def ask_tools(config: ClientConfig, timeout_s: float) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Each server's tools (upstream name → definitions), and why the others' are unknown."""
    import anyio

    from mcp_firewall.commands.offline import ask_upstreams
    from mcp_firewall.config.envvars import expand_tree
    from mcp_firewall.proxy.transports import UpstreamSpec

    environ = {**os.environ, **{k: v for k, v in config.client_env.items() if not v.startswith("${input:")}}
    specs, unknown = [], {}
    asked = {name: value for name, value in config.client_env.items() if value.startswith("${input:")}
    for server in config.servers:
        if needs := [value for name, value in asked.items() if f"${{{name}}}" in json.dumps(server.entry)]:
            unknown[server.name] = f"not started: it needs {needs[0]}, which only {CLIENTS[config.client]} asks for"
            continue
        expansion = expand_tree(server.entry, environ)
        if expansion.problems:
            unknown[server.name] = f"not started: {expansion.problems[0][1].message}"
            continue
        entry = expansion.data
        kind = "stdio" if "command" in entry else entry.get("transport", "http")
        options = {key: value for key, value in entry.items() if key != "transport"}
        specs.append(UpstreamSpec(name=server.name, kind=kind, timeout_s=timeout_s, **_spec_fields(options)))

    async def ask() -> Any:
        return await ask_upstreams(specs, timeout_s=timeout_s)

    definitions = anyio.run(ask)
    unknown.update(definitions.unknown)
    return {lists.name: [dict(tool) for tool in lists.tools] for lists in definitions.lists}, unknown


def _spec_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(entry)
    if "args" in fields:
        fields["args"] = tuple(fields["args"])
    return fields


# -- what is written ---------------------------------------------------------------------------------------


def firewall_yaml(config: ClientConfig) -> str:
    import yaml

    upstreams = {server.name: server.entry for server in config.servers}
    body = yaml.safe_dump({"upstreams": upstreams, "scopes": ["scopes/"]}, sort_keys=False, allow_unicode=True)
    return (
        f"# Written by `mcp-firewall import` from {config.path.resolve()} ({CLIENTS[config.client]}).\n"
        "# Review it: this file holds the upstream servers and their credentials, never an agent's.\n"
        f"{body}"
        "# audit: {path: audit.jsonl}   # a tamper-evident log of every decision\n"
    )


def scope_yaml(
    config: ClientConfig, agent: str, tools: Mapping[str, Sequence[Mapping[str, Any]]], unknown: Mapping[str, str]
) -> str:
    from mcp_firewall.policy.classify import CLASSES, ServerClasses, classify

    lines = [
        f"# Starter scope file written by `mcp-firewall import {config.path.name}`.",
        "# Every class below was taken from the annotations its upstream gave (readOnlyHint, destructiveHint).",
        "# Annotations are hints an upstream may get wrong: REVIEW each tool, move it if needed, then delete",
        "# the `# review` marks. An unlisted tool counts as destructive.",
        "servers:",
    ]
    trusting = ServerClasses(trust_annotations=True)
    for server in config.servers:
        if server.name in unknown:
            lines += [f"  # REVIEW: {_comment(unknown[server.name])}: its tools are unknown", f"  {server.name}: {{}}"]
            continue
        by_class: dict[str, list[str]] = {klass: [] for klass in CLASSES}
        for tool in tools.get(server.name, ()):
            found = classify(tool["name"], tool.get("annotations"), trusting).klass
            by_class[found].append(f"      - {_scalar(tool['name'])}  # review: {_hints(tool.get('annotations'))}")
        listed = [(name, entries) for name, entries in by_class.items() if entries]
        lines.append(f"  {server.name}:" + ("" if listed else " {}"))
        for name, entries in listed:
            lines += [f"    {name}:", *entries]
    read_scopes = ", ".join(f"{server.name}:read" for server in config.servers)
    lines += [
        "",
        "scopes:",
        "  read-only:",
        "    description: Every tool classified read, on every upstream",
        "    allow:",
        f"      - tools: [{read_scopes}]",
        "",
        "agents:",
        f"  {agent}:",
        "    description: Read-only starter agent (from mcp-firewall import)",
        "    scopes: [read-only]",
        "    # owner: you@example.com",
    ]
    return "\n".join(lines) + "\n"


def _hints(annotations: Any) -> str:
    if not isinstance(annotations, Mapping):
        return "no annotations"
    shown = [
        f"{key}: {json.dumps(annotations[key])}" for key in ("readOnlyHint", "destructiveHint") if key in annotations
    ]
    return ", ".join(shown) or "no read/destructive hints"


def _scalar(text: str) -> str:
    import yaml

    dumped: str = yaml.safe_dump(text, default_flow_style=True, width=1 << 20, allow_unicode=True)
    return dumped.strip().removesuffix("...").strip()


def _comment(text: str) -> str:
    return " ".join(text.split())


def client_snippet(config: ClientConfig, command: Sequence[str], firewall_file: Path, agent: str) -> str:
    """The client's file, with the firewall as its one server."""
    entry: dict[str, Any] = {
        "command": command[0],
        "args": [*command[1:], "run", "--config", str(firewall_file), "--agent", agent],
    }
    if config.client_env:
        entry["env"] = {name: _passed(value) for name, value in sorted(config.client_env.items())}
    if config.client == "vscode":
        document: dict[str, Any] = {"servers": {"mcp-firewall": {"type": "stdio", **entry}}}
        if config.inputs:
            document = {"inputs": config.inputs, **document}
    else:
        document = {"mcpServers": {"mcp-firewall": entry}}
    return json.dumps(document, indent=2, ensure_ascii=False)


def _passed(value: str) -> str:
    return value if value.startswith("${input:") else "<the value from your current file>"


# -- the command -------------------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    if not AGENT_NAME.fullmatch(args.agent):
        raise UsageError(f"--agent {args.agent!r} is not an agent name (letters, digits, '.', '_', '-')")
    config = read_client_config(Path(args.file), args.client)
    if not config.servers:
        raise UsageError(f"{args.file}: no server the firewall can serve ({'; '.join(config.skipped) or 'none'})")
    folder = Path(args.output).resolve()
    firewall_file, scope_file = folder / "firewall.yaml", folder / "scopes" / "imported.yaml"
    if not args.force and (existing := [str(path) for path in (firewall_file, scope_file) if path.exists()]):
        raise UsageError(f"{' and '.join(existing)} already exist; pass --force to overwrite")
    tools: dict[str, list[dict[str, Any]]] = {}
    unknown = {server.name: "not started (--no-connect)" for server in config.servers}
    if not args.no_connect:
        tools, unknown = ask_tools(config, args.timeout)
    scope_file.parent.mkdir(parents=True, exist_ok=True)
    firewall_file.write_text(firewall_yaml(config), encoding="utf-8")
    scope_file.write_text(scope_yaml(config, args.agent, tools, unknown), encoding="utf-8")
    _self_check(config, firewall_file)
    _explain(config, firewall_file, scope_file, args.agent, tools, unknown)
    return 0


def _self_check(config: ClientConfig, firewall_file: Path) -> None:
    from mcp_firewall.config.loader import validate

    placeholders = dict.fromkeys(config.client_env, "x")
    issues = validate(firewall_file, environ={**os.environ, **placeholders, "HOME": os.path.expanduser("~")})
    unset = [issue for issue in issues if issue.code == "undefined_variable"]
    for issue in unset:
        print(f"note: {issue}", file=sys.stderr)
    if len(unset) != len(issues):  # a bug: what import writes must always be valid
        raise UsageError("the files written are not valid:\n" + "\n".join(str(i) for i in issues if i not in unset))


def _explain(
    config: ClientConfig,
    firewall_file: Path,
    scope_file: Path,
    agent: str,
    tools: Mapping[str, Sequence[Any]],
    unknown: Mapping[str, str],
) -> None:
    count = sum(len(found) for found in tools.values())
    print(f"wrote {firewall_file} ({len(config.servers)} upstreams)")
    print(f"wrote {scope_file} ({count} tools classified from their annotations, marked for review; agent {agent})")
    for server in config.servers:
        for note in server.notes:
            print(f"  {server.name}: {note}")
        if server.name in unknown:
            print(f"  {server.name}: {_comment(unknown[server.name])}; its tools are unknown")
    for skipped in config.skipped:
        print(f"  skipped {skipped}")
    from mcp_firewall.config.loader import display_path

    relative = display_path(firewall_file)
    print(
        f"\nNext:\n  1. Review {display_path(scope_file)}: each class came from the upstream's own annotations.\n"
        f"  2. mcp-firewall lock --config {relative}    (pins every tool's definition in tools.lock)\n"
        f"  3. Point {CLIENTS[config.client]} at the firewall instead: in {config.path.name}, replace the servers"
        " with this one entry:\n"
    )
    print(client_snippet(config, _firewall_command(), firewall_file, agent))
    if any(not value.startswith("${input:") for value in config.client_env.values()):
        print(f"\n  Fill in each env value from {config.path.name}: credentials were not copied to firewall.yaml.")


def _firewall_command() -> list[str]:
    found = shutil.which("mcp-firewall")
    return [os.path.abspath(found)] if found else [sys.executable, "-m", "mcp_firewall"]
