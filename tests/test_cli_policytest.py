"""`mcp-firewall test` (SPEC §6): policy test files, run like a test runner.

The example scopes ship with their tests (scopes/tests/); they must pass, offline, from the examples'
tools.lock files. The other tests write small test files against the demo configuration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_firewall.catalog import Catalog
from mcp_firewall.cli import main
from mcp_firewall.commands.common import load_config, load_policy_of
from mcp_firewall.commands.policytest import PolicyCase, run_case

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "firewall.yaml"
REVIEWER = REPO / "tests" / "fixtures" / "reviewer"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_the_example_scopes_ship_with_tests_and_they_pass(capsys: pytest.CaptureFixture[str]) -> None:
    scope_files = {path.stem for path in (REPO / "scopes").glob("*.yaml")}
    assert scope_files <= {path.stem for path in (REPO / "scopes" / "tests").glob("*.yaml")}
    code, out, err = run(capsys, "test", "scopes/tests/")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"\d+ passed, 0 failed\n", out), out


def test_a_failure_says_what_was_expected_what_happened_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = write(
        tmp_path / "notes.yaml",
        f"""
        config: {DEMO}
        tests:
          - name: the reader lists notes
            agent: pydantic-ai-agent
            tool: notes__list_notes
            expect: allow
          - name: the drafter may delete its drafts
            agent: sdk-agent
            tool: notes__delete_note
            args: {{name: draft-a.md}}
            expect: allow
          - agent: sdk-agent
            tool: notes__create_note
            args: {{name: todo.md, text: x}}
            expect: deny
            reason: must start with draft-
            scope: notes-drafter
        """,
    )
    code, out, _ = run(capsys, "test", str(tests))
    assert code == 1
    assert out == golden(f"""
        FAIL  {tests}:7: the drafter may delete its drafts
              request:  sdk-agent → tool notes__delete_note {{"name": "draft-a.md"}}
              expected: allow
              got:      hidden: demo agents never delete or overwrite notes (rule scopes/notes.yaml:49:5)
        FAIL  {tests}:12: sdk-agent: tool notes__create_note {{"name": "todo.md", "text": "x"}}
              expected: deny, reason containing 'must start with draft-', decided by scope notes-drafter
              got:      deny: value 'todo.md' does not match the pattern 'draft-[A-Za-z0-9._-]{{1,58}}' (scope notes-drafter, rule scopes/notes.yaml:31:9)

        1 passed, 2 failed
        """)  # noqa: E501


def test_verbose_prints_every_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = write(
        tmp_path / "t.yaml",
        """
        - name: the reader lists notes
          agent: pydantic-ai-agent
          tool: notes__list_notes
          expect: allow
        """,
    )
    code, out, _ = run(capsys, "test", "-v", "--config", str(DEMO), str(tests))
    assert (code, out) == (0, f"ok    {tests}:1: the reader lists notes\n\n1 passed, 0 failed\n")


def test_a_broken_test_file_is_reported_with_its_locations_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path / "a-broken.yaml",
        """
        - agent: sdk-agent
          tol: notes__list_notes
          expect: maybe
        """,
    )
    write(tmp_path / "b-good.yaml", "- {agent: sdk-agent, tool: notes__list_notes, expect: allow}\n")
    code, out, _ = run(capsys, "test", "--config", str(DEMO), str(tmp_path))
    assert code == 1
    broken = tmp_path / "a-broken.yaml"
    assert out == golden(f"""
        ERROR {broken}: its cases could not be run
              {broken}:2:3: schema_error: tests[0].tol: unknown key 'tol' (expected one of: name, agent, tool, prompt, resource, args, expect, reason, scope); did you mean 'tool'?
              {broken}:3:11: schema_error: tests[0].expect: expected 'allow', 'deny', 'hidden' or 'shadow-deny', found string 'maybe'

        1 passed, 0 failed, 1 test file could not be run
        """)  # noqa: E501


def test_without_a_path_the_tests_beside_the_scope_files_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", "--config", "examples/firewall.yaml")
    assert code == 0
    assert re.fullmatch(r"\d+ passed, 0 failed\n", out)


def test_no_test_files_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "test", "--config", str(DEMO), str(tmp_path))[0] == 2
    assert run(capsys, "test", str(tmp_path / "missing.yaml"))[0] == 2


def test_a_case_on_an_upstream_missing_from_the_lock_is_undecided_and_never_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REVIEWER, tmp_path / "config")
    lock_file = tmp_path / "config" / "tools.lock"
    lock = json.loads(lock_file.read_text(encoding="utf-8"))
    del lock["upstreams"]["time"]
    lock_file.write_text(json.dumps(lock), encoding="utf-8")
    tests = write(tmp_path / "t.yaml", "- {agent: janitor, tool: time__get_current_time, expect: hidden}\n")
    code, out, err = run(capsys, "test", "--config", str(tmp_path / "config" / "firewall.yaml"), str(tests))
    assert code == 1
    assert "got:      undecided: the tools of upstream 'time' are unknown: " in out
    assert "tools.lock has no entry for it (run `mcp-firewall lock`)" in out
    assert "upstream 'time' could not be reached" in err


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        ({"agent": "pydantic-ai-agent", "prompt": "notes__review_note", "args": {"name": "a.md"}}, "allow"),
        ({"agent": "openai-agents-agent", "prompt": "notes__other"}, "hidden"),
        ({"agent": "pydantic-ai-agent", "resource": "notes://todo.md"}, "allow"),
        ({"agent": "pydantic-ai-agent", "resource": "file:///etc/passwd"}, "hidden"),
    ],
)
def test_prompts_and_resources_no_upstream_is_known_to_offer_are_decided_by_the_policy_alone(
    case: dict[str, object], outcome: str
) -> None:
    policy = load_policy_of(load_config(str(DEMO)))
    decision = run_case(policy, Catalog(), PolicyCase.model_validate({**case, "expect": outcome}))
    assert decision.outcome == outcome


@pytest.mark.slow
def test_the_demo_lock_still_matches_the_servers_it_pins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example tests decide from examples/tools.lock: when a demo server changes, re-lock (`make demo` would
    otherwise quarantine the changed tools)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    code, out, err = run(capsys, "lock", "--check", "--config", str(DEMO))
    assert code == 0, out + err
