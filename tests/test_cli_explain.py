"""`mcp-firewall explain` (SPEC §6): `check`'s answer, then every rule weighed for that agent and tool.

Golden outputs on the example scopes (scopes/*.yaml, decided offline from the examples' tools.lock).
Tests run from the repository root, so rules read as a reviewer sees them (`scopes/notes.yaml:22:9`).
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from mcp_firewall.cli import main
from mcp_firewall.commands.common import load_config, load_policy_of
from mcp_firewall.commands.explain import explain_tool
from mcp_firewall.commands.offline import tool_definitions
from mcp_firewall.commands.report_common import Paint, columns

REPO = Path(__file__).resolve().parents[1]
DEMO = "examples/firewall.yaml"
REAL = "examples/real-servers/firewall.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)


def explain(capsys: pytest.CaptureFixture[str], config: str, agent: str, tool: str, args: object) -> tuple[int, str]:
    code = main(["explain", "--config", config, "--agent", agent, "--tool", tool, "--args", json.dumps(args)])
    return code, capsys.readouterr().out


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_a_denied_call_shows_the_failing_constraint_of_every_rule_that_selects_the_tool(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = explain(capsys, DEMO, "sdk-agent", "notes__read_note", {"name": "../../etc/passwd"})
    assert code == 1
    assert out == golden("""
        decision:    deny
        agent:       sdk-agent
        tool:        notes__read_note (upstream notes, class read)
        scope:       notes-reader
        rule:        scopes/notes.yaml:22:9
        argument:    name
        constraint:  pattern
        why:         value '../../etc/passwd' does not match the pattern '[A-Za-z0-9._-]{1,64}'

        class:       read: listed under servers.notes.read
        arguments:   {"name": "../../etc/passwd"}

        deny rules for sdk-agent:
          no match  scopes/notes.yaml:49:5  [*__delete_*, *__overwrite_*]

        tool rules of sdk-agent's scopes (notes-reader, notes-drafter, summarizer, time:read):
          fails     notes-reader   scopes/notes.yaml:22:9  selects it by notes:read
              name: pattern "[A-Za-z0-9._-]{1,64}"  fails: value '../../etc/passwd' does not match the pattern '[A-Za-z0-9._-]{1,64}'
          no match  notes-drafter  scopes/notes.yaml:31:9  [notes__create_note, notes__append_note]
          no match  summarizer     scopes/notes.yaml:46:9  [notes__summarize]
          no match  time:read      (built-in)              [time:read]
        """)  # noqa: E501


def test_an_allowed_call_shows_which_constraints_held_and_which_the_tool_does_not_declare(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = explain(
        capsys, REAL, "docs-editor", "files__write_file", {"path": "/srv/docs/drafts/a.md", "content": "# A"}
    )
    assert code == 0
    assert out == golden("""
        decision:    allow
        agent:       docs-editor
        tool:        files__write_file (upstream files, class destructive)
        scope:       drafts-editor
        rule:        scopes/filesystem.yaml:51:9
        constraints: path: within ["/srv/docs/drafts"]
                     content: max_length 200000

        class:       destructive: listed under servers.files.destructive
        arguments:   {"path": "/srv/docs/drafts/a.md", "content": "# A"}

        deny rules for docs-editor:
          no match  scopes/filesystem.yaml:61:5  [files__move_file]
          no match  scopes/git.yaml:47:5         [git__git_reset]

        tool rules of docs-editor's scopes (docs-reader, drafts-editor):
          no match  docs-reader    scopes/filesystem.yaml:42:9  [files:read]
          allows    drafts-editor  scopes/filesystem.yaml:51:9  selects it by files__write_file
              path: within ["/srv/docs/drafts"]   holds
              content: max_length 200000          holds
              edits: max_length 50                ignored: files__write_file does not declare it
              edits[*].newText: max_length 20000  ignored: files__write_file does not declare it
        """)


def test_a_hidden_tool_shows_the_deny_rule_that_hides_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, DEMO, "sdk-agent", "notes__delete_note", {"name": "draft-a.md"})
    assert code == 1
    assert out == golden("""
        decision:    hidden
        agent:       sdk-agent
        tool:        notes__delete_note (upstream notes, class destructive)
        rule:        scopes/notes.yaml:49:5 (deny)
        why:         demo agents never delete or overwrite notes

        class:       destructive: listed under servers.notes.destructive
        arguments:   {"name": "draft-a.md"}

        deny rules for sdk-agent:
          matches by *__delete_*  scopes/notes.yaml:49:5  [*__delete_*, *__overwrite_*]  hides the tool: demo agents never delete or overwrite notes

        tool rules of sdk-agent's scopes (notes-reader, notes-drafter, summarizer, time:read):
          no match  notes-reader   scopes/notes.yaml:22:9  [notes:read]
          no match  notes-drafter  scopes/notes.yaml:31:9  [notes__create_note, notes__append_note]
          no match  summarizer     scopes/notes.yaml:46:9  [notes__summarize]
          no match  time:read      (built-in)              [time:read]
        """)  # noqa: E501


def test_a_failing_array_item_is_named_by_its_index(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = {"paths": ["/srv/docs/a.md", "/etc/shadow"]}
    code, out = explain(capsys, REAL, "docs-assistant", "files__read_multiple_files", arguments)
    assert code == 1
    assert out.endswith(
        "  fails  docs-reader  scopes/filesystem.yaml:42:9  selects it by files:read\n"
        '      path: within ["/srv/docs"]      ignored: files__read_multiple_files does not declare it\n'
        "      paths[*]: within [\"/srv/docs\"]  fails: at paths[1]: path '/etc/shadow' is not within /srv/docs\n"
    )


def test_an_unlisted_tool_is_explained_as_destructive_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(capsys, DEMO, "sdk-agent", "notes__summarize", {"text": "a long note"})
    assert code == 0
    assert "class:       destructive: not listed under servers.notes, and unlisted tools are destructive\n" in out
    assert "  allows    summarizer     scopes/notes.yaml:46:9  selects it by notes__summarize\n" in out
    assert "      (no constraints)\n" in out


@pytest.mark.parametrize(
    ("agent", "tool", "why"),
    [
        ("intruder", "notes__list_notes", "why:         the agent is refused: unknown agent 'intruder'"),
        ("sdk-agent", "notes__read_notes", "why:         no upstream advertises a tool named 'notes__read_notes'"),
    ],
)
def test_with_nothing_to_weigh_explain_says_what_check_says(
    capsys: pytest.CaptureFixture[str], agent: str, tool: str, why: str
) -> None:
    code, out = explain(capsys, DEMO, agent, tool, {})
    assert code == 1
    assert main(["check", "--config", DEMO, "--agent", agent, "--tool", tool]) == 1
    assert out == capsys.readouterr().out
    assert why in out


def test_bad_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["explain", "--config", DEMO, "--agent", "sdk-agent", "--tool", "notes__list_notes", "--args", "[1]"]) == 2
    )
    assert "--args must be a JSON object" in capsys.readouterr().err


def test_the_trace_agrees_with_the_decision_for_every_agent_and_tool() -> None:
    """The trace re-evaluates the rules; it must never tell a story other than the decision's."""
    config = load_config(REAL)
    policy, catalog = load_policy_of(config), tool_definitions(config).catalog()
    for agent in policy.agents:
        for tool in catalog.tools:
            explanation = explain_tool(policy, catalog, agent, tool, {"path": "/srv/docs/a.md"})
            verdicts = {trace.verdict for trace in explanation.rules}
            denied = any(trace.selector is not None for trace in explanation.denies)
            if explanation.decision.outcome == "allow":
                assert "allows" in verdicts and not denied
            elif explanation.decision.outcome == "hidden":
                assert denied or verdicts <= {"no match"}
            elif explanation.decision.constraint != "inputSchema":
                assert "allows" not in verdicts and "fails" in verdicts


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Paint(Terminal())("fails", "red") == "\x1b[31mfails\x1b[0m"
    assert Paint(io.StringIO())("fails", "red") == "fails"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Paint(Terminal())("fails", "red") == "fails"


def test_columns_line_up_painted_and_plain_cells() -> None:
    painted = "\x1b[31mfails\x1b[0m"
    assert columns([[painted, "docs-reader", "x"], ["no match", "time:read", "y"]], indent="  ") == [
        f"  {painted}     docs-reader  x",
        "  no match  time:read    y",
    ]
