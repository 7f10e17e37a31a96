"""The firewall in front of @modelcontextprotocol/server-filesystem, driven by the SDK client.

One firewall session serves the module. Agent A may read under `docs/` and edit under `docs/drafts/`;
move_file is denied to everyone. The server's folders are fixed by `servers.files.roots`, although the
client declares roots of its own (which the server would otherwise adopt).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.client import ClientRequestContext
from mcp.types import CallToolResult, ListRootsResult, Root

from .conftest import FirewallConfig, Recorded, connect, node_peer, nothing_forwarded, text_of, wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@dataclass
class Tree:
    root: Path

    @property
    def docs(self) -> Path:
        return self.root / "docs"

    @property
    def drafts(self) -> Path:
        return self.docs / "drafts"


@dataclass
class Session:
    client: Client
    files: Recorded
    tree: Tree
    roots_asked: list[str]

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return await self.client.call_tool(f"files__{tool}", arguments)

    async def sentinel(self) -> None:
        assert not (await self.call("list_allowed_directories", {})).is_error

    async def sandbox(self, expected: str) -> str | None:
        """The server's list_allowed_directories, once it includes `expected`."""
        listed = text_of(await self.call("list_allowed_directories", {}))
        return listed if expected in listed else None


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    tree = Tree(tmp_path_factory.mktemp("fs").resolve())
    for relative, text in {
        "docs/readme.md": "# Docs\nhello from docs\n",
        "docs/guide.md": "# Guide\nstep one\n",
        "docs/drafts/plan.md": "plan: write the docs\n",
        "docs2/leak.txt": "prefix collision: not within docs\n",
        "secret/passwords.txt": "hunter2\n",
        "cli-dir/only-on-the-command-line.txt": "x\n",
        "client-root/declared-by-the-client.txt": "x\n",
    }.items():
        path = tree.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tree


SCOPES = """
servers:
  files:
    read: [read_text_file, read_multiple_files, list_directory, get_file_info, list_allowed_directories]
    write: [create_directory]
    destructive: [write_file, edit_file, move_file]
    roots: ["file://{docs}"]
scopes:
  reader:
    allow:
      - tools: [files:read]
        args:
          path: {{within: ["{docs}"]}}
          "paths[*]": {{within: ["{docs}"]}}
  drafts-editor:
    allow:
      - tools: [files__edit_file]
        args:
          path: {{within: ["{drafts}"]}}
          "edits[*].newText": {{max_length: 40}}
          "edits[*].path": {{within: ["{drafts}"]}}  # edit_file's items declare no path: ignored for it
deny:
  - tools: [files__move_file]
    reason: nothing moves files
agents:
  A: {{scopes: [reader, drafts-editor]}}
"""


@pytest.fixture(scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> AsyncIterator[Session]:
    config = FirewallConfig(tmp_path_factory.mktemp("fs-firewall"))
    files = config.upstream("files", node_peer("mcp-server-filesystem"), str(tree.root / "cli-dir"))
    config.write(SCOPES.format(docs=tree.docs, drafts=tree.drafts))
    roots_asked: list[str] = []

    async def client_roots(context: ClientRequestContext) -> ListRootsResult:
        roots_asked.append("roots/list")
        return ListRootsResult(roots=[Root(uri=(tree.root / "client-root").as_uri())])

    async with connect(config, mode="legacy", list_roots_callback=client_roots) as client:
        session = Session(client, files, tree, roots_asked)
        # The server asks for roots/list after `initialized` and adopts the answer asynchronously: until
        # then it still serves its command-line folder. Wait for the switch (a server gotcha, not ours).
        await wait_until_async(lambda: session.sandbox(str(tree.docs)), within=15)
        yield session


def assert_denied(result: CallToolResult, argument: str, constraint: str) -> None:
    assert result.is_error
    assert text_of(result).startswith("Denied by mcp-firewall:")
    denial = (result.meta or {})["mcp_firewall/denial"]
    assert (denial["argument"], denial["constraint"]) == (argument, constraint), denial


async def test_a_read_inside_the_granted_folder_returns_the_file(session: Session) -> None:
    result = await session.call("read_text_file", {"path": str(session.tree.docs / "readme.md")})

    assert not result.is_error, text_of(result)
    assert "hello from docs" in text_of(result)


async def test_the_servers_folders_are_the_fixed_roots_not_the_clients(session: Session) -> None:
    listed = await session.sandbox(str(session.tree.docs))

    assert listed is not None
    assert "client-root" not in listed and "cli-dir" not in listed
    assert session.roots_asked == [], "the firewall answers roots/list itself: the client is never asked"
    initialize = next(m for m in session.files.received() if m.get("method") == "initialize")
    assert initialize["params"]["capabilities"] == {"roots": {"listChanged": False}}
    answers = [m["result"]["roots"] for m in session.files.received() if "roots" in m.get("result", {})]
    assert answers and all(roots == [{"uri": session.tree.docs.as_uri()}] for roots in answers)


async def test_a_roots_change_announced_by_the_client_is_not_relayed_to_a_fixed_roots_server(
    session: Session,
) -> None:
    before = len(session.files.received())
    await session.client.session.send_roots_list_changed()
    await session.sentinel()

    methods = [m.get("method") for m in session.files.received()[before:]]
    assert "notifications/roots/list_changed" not in methods
    assert session.roots_asked == []


@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("traversal out of the grant", "{docs}/../secret/passwords.txt"),
        ("prefix collision", "{root}/docs2/leak.txt"),
        ("dot-dot segment that stays inside", "{docs}/drafts/../readme.md"),
        ("dot segment", "{docs}/./readme.md"),
        ("empty segment", "{docs}//readme.md"),
        ("relative path", "docs/readme.md"),
        ("NUL byte", "{docs}/readme.md\x00.txt"),
        ("backslash", "{docs}\\..\\secret\\passwords.txt"),
        ("outside every grant", "/etc/passwd"),
    ],
)
async def test_a_path_that_is_not_a_normalised_child_of_the_grant_is_denied_before_the_upstream(
    session: Session, case: str, path: str
) -> None:
    path = path.format(docs=session.tree.docs, root=session.tree.root)

    async with nothing_forwarded(session.files, session.sentinel):
        result = await session.call("read_text_file", {"path": path})

    assert_denied(result, "path", "within")
    assert "hunter2" not in text_of(result)


async def test_a_non_normalised_path_is_refused_with_a_message_that_says_so(session: Session) -> None:
    result = await session.call("read_text_file", {"path": f"{session.tree.docs}/drafts/../readme.md"})

    assert_denied(result, "path", "within")
    assert "normalised" in text_of(result) or "normalized" in text_of(result), text_of(result)


async def test_one_bad_item_in_paths_denies_the_whole_read_multiple_files(session: Session) -> None:
    docs = session.tree.docs
    paths = [str(docs / "readme.md"), f"{docs}/../secret/passwords.txt", str(docs / "guide.md")]

    async with nothing_forwarded(session.files, session.sentinel):
        result = await session.call("read_multiple_files", {"paths": paths})

    assert_denied(result, "paths[1]", "within")


async def test_read_multiple_files_with_every_item_inside_is_allowed(session: Session) -> None:
    docs = session.tree.docs
    result = await session.call("read_multiple_files", {"paths": [str(docs / "readme.md"), str(docs / "guide.md")]})

    assert not result.is_error, text_of(result)
    assert "hello from docs" in text_of(result) and "step one" in text_of(result)


async def test_an_edit_whose_second_replacement_breaks_its_constraint_is_denied(session: Session) -> None:
    edits = [{"oldText": "plan", "newText": "short"}, {"oldText": "docs", "newText": "x" * 41}]

    async with nothing_forwarded(session.files, session.sentinel):
        result = await session.call("edit_file", {"path": str(session.tree.drafts / "plan.md"), "edits": edits})

    assert_denied(result, "edits[1].newText", "max_length")
    assert (session.tree.drafts / "plan.md").read_text(encoding="utf-8") == "plan: write the docs\n"


async def test_an_edit_outside_the_drafts_folder_is_denied(session: Session) -> None:
    edits = [{"oldText": "hello", "newText": "pwned"}]

    async with nothing_forwarded(session.files, session.sentinel):
        result = await session.call("edit_file", {"path": str(session.tree.docs / "readme.md"), "edits": edits})

    assert_denied(result, "path", "within")
    assert "hello from docs" in (session.tree.docs / "readme.md").read_text(encoding="utf-8")


async def test_an_edits_item_smuggling_an_undeclared_path_is_refused_by_the_tools_schema(session: Session) -> None:
    edits = [{"oldText": "plan", "newText": "p", "path": "/etc/passwd"}]  # items are additionalProperties: false

    async with nothing_forwarded(session.files, session.sentinel):
        result = await session.call("edit_file", {"path": str(session.tree.drafts / "plan.md"), "edits": edits})

    assert result.is_error and text_of(result).startswith("Denied by mcp-firewall:")
    assert "path" in text_of(result)


async def test_an_edit_inside_the_drafts_folder_reaches_the_server(session: Session) -> None:
    plan = session.tree.drafts / "notes.md"
    plan.write_text("status: todo\n", encoding="utf-8")

    result = await session.call("edit_file", {"path": str(plan), "edits": [{"oldText": "todo", "newText": "done"}]})

    assert not result.is_error, text_of(result)
    assert plan.read_text(encoding="utf-8") == "status: done\n"


async def test_a_hidden_destructive_tool_answers_exactly_like_an_unknown_tool(session: Session) -> None:
    listed = {tool.name for tool in (await session.client.list_tools()).tools}
    assert "files__move_file" not in listed and "files__write_file" not in listed
    assert "files__read_text_file" in listed

    errors = {}
    async with nothing_forwarded(session.files, session.sentinel):
        for tool in ("move_file", "write_file", "no_such_tool"):
            arguments = {"source": str(session.tree.docs / "readme.md"), "destination": "/tmp/x"}
            with pytest.raises(MCPError) as caught:
                await session.call(tool, arguments)
            errors[tool] = (caught.value.error.code, caught.value.error.message.replace(tool, "<tool>"))

    assert errors["move_file"] == errors["write_file"] == errors["no_such_tool"]
    assert errors["move_file"][0] == -32602
    assert (session.tree.docs / "readme.md").exists()
