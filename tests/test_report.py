"""`mcp-firewall report`: each agent's effective permissions, in the terminal and as a static HTML matrix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from mcp_firewall.commands.offline import tool_definitions
from mcp_firewall.commands.report import Report, build_report, render_html, render_text
from mcp_firewall.config.loader import load_firewall_file
from mcp_firewall.lockfile import LockedUpstream, ToolLock, write_lock
from mcp_firewall.proxy.reload import load_policy

SCOPES = """
servers:
  files:
    read: [read_text_file]
    destructive: [write_file, delete_file]
    sampling: allow
    roots: ["file:///srv/docs"]
scopes:
  docs-reader:
    allow:
      - tools: [files:read]
        args: {path: {within: [/srv/docs]}}
      - resources: ["file:///srv/docs/**"]
      - prompts: ["files__*"]
  writer:
    allow:
      - tools: [files__write_file]
  trial:
    mode: shadow
    allow:
      - tools: [files__write_file]
        args: {path: {within: [/srv/drafts]}}
deny:
  - tools: [files__delete_file]
    reason: nothing deletes files
agents:
  reader: {scopes: [docs-reader], owner: docs@example.com, description: Reads the docs}
  editor: {scopes: [docs-reader, writer]}
  trialist: {scopes: [trial]}
  watcher: {scopes: [], mode: shadow}
  retired: {scopes: [writer], expires: 2020-01-01}
"""
PATH_ARG = {"type": "object", "properties": {"path": {"type": "string"}}}
TOOLS = [
    {"name": "read_text_file", "description": "Read a text file.", "inputSchema": PATH_ARG},
    {"name": "write_file", "description": "Write a file <script>alert(1)</script>.", "inputSchema": PATH_ARG},
    {"name": "delete_file", "description": "Delete a file.", "inputSchema": PATH_ARG},
]
EXPECTED_MATRIX = {
    "files__delete_file": {
        "reader": "denied",
        "editor": "denied",
        "trialist": "denied",
        "watcher": "denied",
        "retired": "refused",
    },
    "files__read_text_file": {
        "reader": "constrained",
        "editor": "constrained",
        "trialist": "hidden",
        "watcher": "shadow",
        "retired": "refused",
    },
    "files__write_file": {
        "reader": "hidden",
        "editor": "allowed",
        "trialist": "shadow",
        "watcher": "shadow",
        "retired": "refused",
    },
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A firewall file whose upstream is never started: its tools come from tools.lock."""
    (tmp_path / "scopes.yaml").write_text(SCOPES, encoding="utf-8")
    path = tmp_path / "firewall.yaml"
    firewall = {"upstreams": {"files": {"command": "not-started"}}, "scopes": ["scopes.yaml"]}
    path.write_text(yaml.safe_dump(firewall), encoding="utf-8")
    prompts = [{"name": "review", "description": "Review a document"}]
    write_lock(ToolLock({"files": LockedUpstream.of(TOOLS, {"name": "fs"}, prompts=prompts)}), tmp_path / "tools.lock")
    return path


def report_of(config: Path) -> Report:
    loaded = load_firewall_file(config)
    return build_report(loaded, load_policy(config), tool_definitions(loaded))


class MatrixReader(HTMLParser):
    """The agents × tools matrix of a report page: tool → agent → status, as the browser's DOM has it."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix: dict[str, dict[str, str]] = {}
        self.agents: list[str] = []
        self.scripts = 0
        self._in_matrix = False
        self._tool: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.scripts += tag == "script"
        if tag == "table":
            self._in_matrix = found.get("id") == "matrix"
        elif self._in_matrix and tag == "th" and found.get("data-agent"):
            self.agents.append(str(found["data-agent"]))
        elif self._in_matrix and tag == "tr":
            self._tool = found.get("data-tool")
        elif self._in_matrix and tag == "td" and self._tool and found.get("data-status"):
            self.matrix.setdefault(self._tool, {})[str(found["data-agent"])] = str(found["data-status"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False


def read_matrix(page: str) -> MatrixReader:
    reader = MatrixReader()
    reader.feed(page)
    return reader


# -- what is decided ---------------------------------------------------------------------------------------


def test_every_agent_and_tool_is_decided_by_the_policy_the_firewall_runs(config: Path) -> None:
    report = report_of(config)

    assert [agent.name for agent in report.agents] == ["editor", "reader", "retired", "trialist", "watcher"]
    assert {t.exposed: {a.name: a.cells[t.exposed].status for a in report.agents} for t in report.tools} == (
        EXPECTED_MATRIX
    )


def test_the_terminal_table_gives_each_agent_its_tools_classes_constraints_and_other_grants(config: Path) -> None:
    text = render_text(report_of(config))
    reader = text.split("\nagent reader", 1)[1].split("\n\n", 1)[0].splitlines()

    assert reader == [
        " — Reads the docs (owner docs@example.com, enforce)",
        "  TOOL                   CLASS  SCOPE        CONSTRAINTS",
        '  files__read_text_file  read   docs-reader  path: within ["/srv/docs"]',
        f"  denied: files__delete_file (nothing deletes files; {config.parent / 'scopes.yaml'}:24)",
        "  resources: file:///srv/docs/** (docs-reader)",
        "  prompts: files__review (docs-reader)",
        "  upstream requests: files: sampling, roots (fixed: file:///srv/docs)",
    ]
    assert '  files__write_file  destructive  trial (shadow)  path: within ["/srv/drafts"]' in text.splitlines()
    assert "  files__write_file      destructive  (not granted)  shadow-deny" in text.splitlines()
    assert (
        "agent retired (no owner, enforce, expires 2020-01-02T00:00:00+00:00)\n  refused: agent 'retired' expired"
        in text
    )


# -- the HTML page -----------------------------------------------------------------------------------------


def test_the_html_page_is_static_and_escapes_what_upstreams_wrote(config: Path) -> None:
    page = render_html(report_of(config))
    reader = read_matrix(page)

    assert reader.matrix == EXPECTED_MATRIX
    assert reader.agents == ["editor", "reader", "retired", "trialist", "watcher"]
    assert reader.scripts == 0 and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "default-src 'none'" in page and "http" not in page.split("<body>")[0].replace("http-equiv", "")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("headless Chromium is not installed (apt-get install chromium)")


@pytest.mark.slow
def test_the_report_command_writes_a_page_whose_matrix_a_browser_renders(config: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    command = [sys.executable, "-m", "mcp_firewall", "report", "--config", str(config), "--html", str(page)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"wrote {page}"

    browser = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom"]
    dom = subprocess.run(
        [*browser, f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout

    rendered = read_matrix(dom)
    assert rendered.agents == ["editor", "reader", "retired", "trialist", "watcher"]
    assert rendered.matrix == EXPECTED_MATRIX
    assert rendered.scripts == 0
