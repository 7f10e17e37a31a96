"""`mcp-firewall lint` (SPEC §6): warnings about risky or dead policy, each at FILE:LINE:COL.

tests/fixtures/reviewer/scopes/risky.yaml has one of each thing lint warns about; its tools.lock holds
the real definitions of server-filesystem, mcp-server-fetch and mcp-server-time, so nothing is started.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mcp_firewall.cli import main
from mcp_firewall.commands.lint import risky_arguments

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "reviewer"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)


def test_every_warning_names_the_line_to_look_at(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", "--config", str(FIXTURE / "firewall.yaml"))
    assert code == 0
    assert err == "20 warnings\n"
    risky = "tests/fixtures/reviewer/scopes/risky.yaml"
    assert out == golden(f"""
        {risky}:17:3: trust_annotations: the upstream's own hints, which it may get wrong, classify fetch's unlisted tools (today: fetch (read)): list them under read, write or destructive
        {risky}:25:9: unconstrained_path: path-like argument `paths[*]` is unconstrained for files__read_multiple_files: add `paths[*]: {{within: [...]}}`
        {risky}:28:11: unused_constraint: `pahts` applies to none of the tools this rule grants (files__directory_tree, files__get_file_info, files__list_allowed_directories, files__list_directory, files__list_directory_with_sizes, files__read_file and 4 more): none declares it
        {risky}:31:9: unconstrained_path: path-like argument `destination` is unconstrained for files__move_file: add `destination: {{within: [...]}}`
        {risky}:31:9: unconstrained_path: path-like argument `path` is unconstrained for files__create_directory, files__directory_tree, files__edit_file, files__get_file_info, files__list_directory, files__list_directory_with_sizes and 5 more: add `path: {{within: [...]}}`
        {risky}:31:9: unconstrained_path: path-like argument `paths[*]` is unconstrained for files__read_multiple_files: add `paths[*]: {{within: [...]}}`
        {risky}:31:9: unconstrained_path: path-like argument `source` is unconstrained for files__move_file: add `source: {{within: [...]}}`
        {risky}:31:9: wildcard_grant: tool selector 'files__*' also grants whatever upstreams add later that matches it (today: files__create_directory, files__directory_tree, files__edit_file, files__get_file_info, files__list_allowed_directories, files__list_directory and 8 more): name them instead
        {risky}:34:9: destructive_class: files:destructive grants every destructive tool of files (today: files__edit_file, files__move_file, files__write_file), and any it adds: name them
        {risky}:34:9: unconstrained_path: path-like argument `destination` is unconstrained for files__move_file: add `destination: {{within: [...]}}`
        {risky}:34:9: unconstrained_path: path-like argument `path` is unconstrained for files__edit_file, files__write_file: add `path: {{within: [...]}}`
        {risky}:34:9: unconstrained_path: path-like argument `source` is unconstrained for files__move_file: add `source: {{within: [...]}}`
        {risky}:37:9: unconstrained_url: url-like argument `url` is unconstrained for fetch__fetch: add `url: {{url: {{hosts: [...]}}}}`
        {risky}:42:9: grants_nothing: this rule grants no tool: no advertised tool matches it, or deny rules hide all of them
        {risky}:43:3: unused_scope: scope 'forgotten' is held by no agent: remove it or grant it
        {risky}:48:5: dead_deny: 'files__delete_file' names no tool that any upstream advertises, so it never matches
        {risky}:50:5: dead_deny: this deny rule applies to no agent (agents: [ci-*])
        {risky}:58:3: destructive_class: time:destructive grants every destructive tool of time, and any it adds: name them
        {risky}:58:3: no_owner: agent 'janitor' has no `owner`: say who answers for it
        {risky}:60:3: expired: agent 'old-bot' expired on 2020-01-01: renew or remove it
        """)  # noqa: E501


def test_strict_turns_warnings_into_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "lint", "--strict", "--config", str(FIXTURE / "firewall.yaml"))[0] == 1


def test_the_demo_scopes_are_clean_and_lint_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "lint", "--strict", "--config", "examples/firewall.yaml") == (0, "", "")


def test_the_real_server_scopes_warn_only_about_the_curators_deliberate_class_grant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "lint", "--config", "examples/real-servers/firewall.yaml")
    assert (code, err) == (0, "1 warning\n")
    assert out == (
        "scopes/memory.yaml:38:9: destructive_class: memory:destructive grants every destructive tool of memory "
        "(today: memory__delete_entities, memory__delete_observations, memory__delete_relations), and any it adds: "
        "name them\n"
    )


def test_a_constraint_on_the_argument_silences_the_unconstrained_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        tmp_path,
        """
        servers:
          fetch: {read: [fetch]}
        scopes:
          web:
            allow:
              - tools: [fetch__fetch]
                args:
                  url: {url: {hosts: [docs.python.org]}}
        agents:
          researcher: {owner: research@example.com, scopes: [web]}
        """,
    )
    assert run(capsys, "lint", "--strict", "--config", str(config)) == (0, "", "")


def test_rules_of_expired_agents_are_not_reported_as_granting_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(
        tmp_path,
        """
        servers:
          time: {read: [get_current_time, convert_time]}
        scopes:
          clock: {allow: [{tools: [time__get_current_time]}]}
        agents:
          retired: {owner: a@example.com, scopes: [clock], expires: 2020-01-01}
        """,
    )
    code, out, _ = run(capsys, "lint", "--config", str(config))
    assert [line.split(": ")[1] for line in out.splitlines()] == ["expired"]


@pytest.mark.parametrize(
    ("schema", "found"),
    [
        ({"properties": {"path": {"type": "string"}, "head": {"type": "number"}}}, [("path", "path")]),
        ({"properties": {"repo_path": {"type": "string"}, "branch_name": {"type": "string"}}}, [("repo_path", "path")]),
        ({"properties": {"paths": {"type": "array", "items": {"type": "string"}}}}, [("paths[*]", "path")]),
        (
            {"properties": {"edits": {"type": "array", "items": {"properties": {"filePath": {"type": "string"}}}}}},
            [("edits[*].filePath", "path")],
        ),
        ({"properties": {"target": {"type": "string", "format": "uri"}}}, [("target", "url")]),
        (
            {"properties": {"webhookUrl": {"type": "string"}, "source_timezone": {"type": "string"}}},
            [("webhookUrl", "url")],
        ),
        ({"properties": {"url": {"type": "integer"}}}, []),
    ],
)
def test_path_and_url_arguments_are_recognised_by_name_and_format(
    schema: dict[str, object], found: list[object]
) -> None:
    assert list(risky_arguments(schema)) == found


def _config(tmp_path: Path, scopes: str) -> Path:
    (tmp_path / "scopes").mkdir()
    (tmp_path / "scopes" / "policy.yaml").write_text(textwrap.dedent(scopes), encoding="utf-8")
    firewall = (FIXTURE / "firewall.yaml").read_text(encoding="utf-8")
    (tmp_path / "firewall.yaml").write_text(firewall, encoding="utf-8")
    (tmp_path / "tools.lock").write_text((FIXTURE / "tools.lock").read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path / "firewall.yaml"
