"""`mcp-firewall diff OLD NEW` (SPEC §6): what each agent gains and loses between two versions of the scopes.

Real edits of the real-server scopes (scopes/filesystem.yaml, git.yaml, ...), compared against
examples/real-servers/firewall.yaml and its tools.lock: a widened path, an added scope, a removed deny,
a tightened bound and a reclassified tool; then the same through `--git` on a scratch repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mcp_firewall.cli import main
from mcp_firewall.commands.diff import compare_constraints

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "examples" / "real-servers" / "firewall.yaml")
SCOPE_FILES = ("filesystem.yaml", "git.yaml", "fetch.yaml", "memory.yaml", "time.yaml")


@pytest.fixture
def versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """old/ and new/: identical copies of the real-server scope files; the working directory."""
    for version in ("old", "new"):
        (tmp_path / version).mkdir()
        for name in SCOPE_FILES:
            shutil.copy(REPO / "scopes" / name, tmp_path / version / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diff", "--config", CONFIG, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


WIDEN_DRAFTS = ("path: {within: [/srv/docs/drafts]}", "path: {within: [/srv/docs]}")


def test_no_change_exits_0_and_prints_nothing(versions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert diff(capsys, "old", "new") == (0, "", "no changes\n")


def test_a_widened_path_loosens_every_tool_of_the_rule(versions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(versions / "new" / "filesystem.yaml", *WIDEN_DRAFTS)
    code, out, _ = diff(capsys, "old", "new")
    assert code == 1
    assert out == golden("""
        docs-editor
          loosened  files__create_directory  path: within ["/srv/docs/drafts"] → within ["/srv/docs"]
          loosened  files__edit_file         path: within ["/srv/docs/drafts"] → within ["/srv/docs"]
          loosened  files__write_file        path: within ["/srv/docs/drafts"] → within ["/srv/docs"]

        1 agent changed: 3 loosened
        """)


def test_an_added_scope_gains_its_tools_and_prompts_with_their_constraints(
    versions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(versions / "new" / "filesystem.yaml", "    scopes: [docs-reader]\n", "    scopes: [docs-reader, web-reader]\n")
    code, out, _ = diff(capsys, "old", "new")
    assert code == 1
    assert out == golden("""
        docs-assistant
          gained  fetch__fetch  read, via web-reader: max_length: max 20000, required false; start_index: min 0, required false; url: url.hosts ["*.wikipedia.org", "developer.mozilla.org", "docs.python.org"], url.schemes ["https"]
          gained  fetch__fetch  prompt

        1 agent changed: 2 gained
        """)  # noqa: E501


def test_a_removed_deny_gains_what_it_hid_and_says_so(versions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deny = "deny:\n  - tools: [memory__delete_entities]\n    reason: entities are deleted by hand\n\nagents:\n"
    edit(versions / "old" / "memory.yaml", "agents:\n", deny)
    code, out, _ = diff(capsys, "old", "new")
    assert code == 1
    assert out == golden("""
        memory-curator
          gained  memory__delete_entities  destructive, via memory-curation: unconstrained (was hidden by a deny rule: entities are deleted by hand)

        1 agent changed: 1 gained
        """)  # noqa: E501


def test_tightened_bounds_reclassified_tools_and_lost_tools(versions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git = versions / "new" / "git.yaml"
    edit(git, "max_count: {min: 1, max: 200, required: false}", "max_count: {min: 1, max: 50, required: false}")
    edit(git, "write: [git_add, git_commit,", "write: [git_commit,")
    edit(git, "destructive: [git_reset]", "destructive: [git_reset, git_add]")
    edit(versions / "new" / "git.yaml", "read: [git_status, git_diff_unstaged,", "read: [git_diff_unstaged,")
    code, out, _ = diff(capsys, "old", "new")
    assert code == 1
    assert out == golden("""
        code-reviewer
          lost       git__git_status  read (now of class destructive)
          tightened  git__git_log     max_count: max 200 → max 50
        release-bot
          lost       git__git_status  read (now of class destructive)
          tightened  git__git_log     max_count: max 200 → max 50
          class      git__git_add     write → destructive

        2 agents changed: 2 lost, 2 tightened, 1 class
        """)


def test_markdown_for_a_pull_request_comment(versions: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(versions / "new" / "filesystem.yaml", *WIDEN_DRAFTS)
    edit(versions / "new" / "fetch.yaml", "sampling: deny", "sampling: allow")
    edit(versions / "new" / "time.yaml", "time: {pattern:", "time: {max_length: 5, pattern:")
    code, out, _ = diff(capsys, "old", "new", "--format", "markdown")
    assert code == 1
    assert out == golden(r"""
        ### mcp-firewall diff: old → new

        2 agents changed: 3 loosened, 1 tightened, 1 server setting

        #### `docs-editor`

        | change | what | details |
        | --- | --- | --- |
        | **loosened** | `files__create_directory` | path: within ["/srv/docs/drafts"] → within ["/srv/docs"] |
        | **loosened** | `files__edit_file` | path: within ["/srv/docs/drafts"] → within ["/srv/docs"] |
        | **loosened** | `files__write_file` | path: within ["/srv/docs/drafts"] → within ["/srv/docs"] |

        #### `scheduler`

        | change | what | details |
        | --- | --- | --- |
        | tightened | `time__convert_time` | time: (none) → max\_length 5 |

        #### servers

        | setting | change |
        | --- | --- |
        | `fetch.sampling` | deny → allow (loosened) |
        """)


def test_an_agent_added_or_removed_gains_or_loses_everything(
    versions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(versions / "new" / "time.yaml", "  scheduler:\n", "  planner:\n")
    code, out, _ = diff(capsys, "old", "new")
    assert code == 1
    assert out == golden("""
        planner (added)
          gained  time__convert_time      read, via clock: source_timezone: pattern "[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}"; target_timezone: pattern "[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}"; time: pattern "([01][0-9]|2[0-3]):[0-5][0-9]"
          gained  time__get_current_time  read, via clock: timezone: pattern "[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}"
        scheduler (removed)
          lost    time__convert_time      read
          lost    time__get_current_time  read

        2 agents changed: 2 gained, 2 lost
        """)  # noqa: E501


# ---------------------------------------------------------------------------------------------
# --git
# ---------------------------------------------------------------------------------------------


def git(cwd: Path, *argv: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@x"
    subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with the real-server scopes in scopes/, committed once (HEAD~1) and widened (HEAD)."""
    repo = tmp_path / "repo"
    (repo / "scopes").mkdir(parents=True)
    for name in SCOPE_FILES:
        shutil.copy(REPO / "scopes" / name, repo / "scopes" / name)
    firewall = "upstreams:\n" + "".join(
        f"  {u}: {{command: {u}}}\n" for u in ("files", "git", "fetch", "memory", "time")
    )
    (repo / "firewall.yaml").write_text(firewall + "scopes: [scopes/]\n", encoding="utf-8")
    shutil.copy(REPO / "examples" / "real-servers" / "tools.lock", repo / "tools.lock")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    edit(repo / "scopes" / "filesystem.yaml", *WIDEN_DRAFTS)
    git(repo, "commit", "-q", "-am", "v2: widen drafts")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)
    return repo


def git_diff(capsys: pytest.CaptureFixture[str], revisions: str) -> tuple[int, str, str]:
    code = main(["diff", "--git", revisions])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_git_compares_two_revisions(repository: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = git_diff(capsys, "HEAD~1..HEAD")
    assert code == 1
    assert out.splitlines()[:2] == [
        "docs-editor",
        '  loosened  files__create_directory  path: within ["/srv/docs/drafts"] → within ["/srv/docs"]',
    ]
    assert git_diff(capsys, "HEAD..HEAD") == (0, "", "no changes\n")


def test_git_with_one_revision_compares_it_with_the_working_tree(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert git_diff(capsys, "HEAD") == (0, "", "no changes\n")
    (repository / "scopes" / "time.yaml").unlink()
    edit(repository / "scopes" / "memory.yaml", "    scopes: [memory-reader, memory-writer]\n", "    scopes: []\n")
    code, out, _ = git_diff(capsys, "HEAD")
    assert code == 1
    assert out == golden("""
        scheduler (removed)
          lost  time__convert_time        read
          lost  time__get_current_time    read
        support-assistant
          lost  memory__add_observations  write
          lost  memory__create_entities   write
          lost  memory__create_relations  write
          lost  memory__open_nodes        read
          lost  memory__read_graph        read
          lost  memory__search_nodes      read
          lost  memory://knowledge-graph  resources (URI glob)

        2 agents changed: 9 lost
        """)


def test_a_file_added_in_the_new_revision_counts_from_nothing(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = "scopes:\n  clock2: {allow: [{tools: [time:read]}]}\nagents:\n  bot: {owner: a@b.c, scopes: [clock2]}\n"
    (repository / "scopes" / "extra.yaml").write_text(extra, encoding="utf-8")
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "v3")
    code, out, _ = git_diff(capsys, "HEAD~1..")
    assert code == 1
    assert out.startswith("bot (added)\n  gained  time__convert_time      read, via clock2: unconstrained\n")


def test_an_invalid_scope_file_at_a_revision_is_named_by_revision_and_path(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repository / "scopes" / "time.yaml", "    scopes: [clock]", "    scopes: [clocks]")
    git(repository, "commit", "-q", "-am", "broken")
    code, out, err = git_diff(capsys, "HEAD~1..HEAD")  # the working tree is broken too
    assert (code, out) == (2, "")
    assert "scopes/time.yaml:" in err and "clocks" in err
    git(repository, "checkout", "HEAD~1", "--", "scopes/time.yaml")  # the working tree mended, HEAD still broken
    code, out, err = git_diff(capsys, "HEAD~1..HEAD")
    assert (code, out) == (2, "")
    assert "HEAD:scopes/time.yaml:" in err and "clocks" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["old"], ["old", "new", "--git", "HEAD"], ["--git", "no-such-revision"]],
    ids=["nothing", "one-version", "both", "bad-revision"],
)
def test_usage_errors_exit_2(repository: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["diff", *argv]) == 2


# ---------------------------------------------------------------------------------------------
# How one constraint compares with another
# ---------------------------------------------------------------------------------------------

URL = {"schemes": ["https"], "hosts": ["a.example"], "ports": None}


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        ({"within": ["/srv/docs"]}, {"within": ["/srv"]}, "loosened"),
        ({"within": ["/srv/docs"]}, {"within": ["/srv/docs/drafts"]}, "tightened"),
        ({"within": ["/srv/docs"]}, {"within": ["/srv/docs2"]}, "changed"),  # a prefix is not a parent
        ({"within": ["/srv/docs"]}, {"within": ["/srv/docs", "/tmp"]}, "loosened"),
        ({"not_within": ["/etc"]}, {"not_within": ["/etc", "/root"]}, "tightened"),
        ({"max_length": 10}, {"max_length": 100}, "loosened"),
        ({"min": 0, "max": 10}, {"min": 1, "max": 10}, "tightened"),
        ({"min": 0, "max": 10}, {"min": -1, "max": 5}, "changed"),
        ({"enum": ["a", "b"]}, {"enum": ["a"]}, "tightened"),
        ({"url": URL}, {"url": {**URL, "hosts": ["a.example", "b.example"]}}, "loosened"),
        ({"url": URL}, {"url": {**URL, "ports": [443, 8443]}}, "changed"),
        ({"pattern": "a+"}, {"pattern": "a*"}, "changed"),
        ({"within": ["/srv"]}, {"within": ["/srv"], "required": False}, "loosened"),
        ({"within": ["/srv"], "required": False}, {"within": ["/srv"]}, "tightened"),
        ({"within": ["/srv"]}, {"within": ["/srv"], "max_length": 100}, "tightened"),
        ({"within": ["/srv"]}, None, "loosened"),
        (None, {"within": ["/srv"]}, "tightened"),
    ],
)
def test_constraints_compare_as_loosened_tightened_or_changed(
    old: dict[str, Any] | None, new: dict[str, Any] | None, verdict: str
) -> None:
    assert compare_constraints(old, new) == verdict
