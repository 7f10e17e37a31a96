"""`mcp-firewall check` and `mcp-firewall tools` (SPEC §6): exact output and exit codes.

The configuration is tests/fixtures/policy/cli/: four upstreams whose real tool definitions are in the
`tools.lock` beside the firewall file, so the commands decide offline. Tests run from that folder, so
rule locations read as a reviewer sees them (`scopes/access.yaml:5:9`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.harness import Recorder, memory_opener
from support.servers import lowlevel, tool

from mcp_firewall.catalog import UpstreamLists
from mcp_firewall.cli import main
from mcp_firewall.commands.offline import ask_upstreams, lock_document, tool_hash
from mcp_firewall.proxy.transports import UpstreamSpec

FIXTURE = Path(__file__).parent / "fixtures" / "policy" / "cli"


@pytest.fixture
def in_fixture(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(FIXTURE)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)
    return FIXTURE


@pytest.fixture
def fixture_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the fixture configuration, and the working directory."""
    copy = tmp_path / "config"
    shutil.copytree(FIXTURE, copy)
    monkeypatch.chdir(copy)
    return copy


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ---------------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------------

CHECKS = [
    pytest.param(
        ["--agent", "support-bot", "--tool", "files__read_text_file", "--args", '{"path": "/srv/docs/guide.md"}'],
        0,
        """
        decision:    allow
        agent:       support-bot
        tool:        files__read_text_file (upstream files, class read)
        scope:       docs-reader
        rule:        scopes/access.yaml:5:9
        constraints: path: within ["/srv/docs"]
        """,
        id="allowed-with-the-rules-constraints",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "time__get_current_time", "--args", '{"timezone": "UTC"}'],
        0,
        """
        decision:    allow
        agent:       support-bot
        tool:        time__get_current_time (upstream time, class read)
        scope:       docs-reader
        rule:        scopes/access.yaml:9:9
        constraints: none: the rule grants the tool outright
        """,
        id="allowed-outright",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "time__get_current_time", "--args", '{"timezone": 1}'],
        1,
        """
        decision:    deny
        agent:       support-bot
        tool:        time__get_current_time (upstream time, class read)
        argument:    timezone
        constraint:  inputSchema
        why:         arguments do not match the tool's inputSchema at timezone: 1 is not of type 'string'
        """,
        id="denied-input",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "files__read_text_file", "--args", '{"path": "/etc/passwd"}'],
        1,
        """
        decision:    deny
        agent:       support-bot
        tool:        files__read_text_file (upstream files, class read)
        scope:       docs-reader
        rule:        scopes/access.yaml:5:9
        argument:    path
        constraint:  within
        why:         path '/etc/passwd' is not within /srv/docs
        """,
        id="denied-by-a-constraint",
    ),
    pytest.param(
        ["--agent", "release-bot", "--tool", "git__git_commit", "--args", '{"repo_path": "/srv/repos/site"}'],
        1,
        """
        decision:    deny
        agent:       release-bot
        tool:        git__git_commit (upstream git, class write)
        argument:    message
        constraint:  inputSchema
        why:         arguments do not match the tool's inputSchema at message: 'message' is a required property
        """,
        id="denied-missing-argument",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "files__move_file"],
        1,
        """
        decision:    hidden
        agent:       support-bot
        tool:        files__move_file (upstream files, class destructive)
        rule:        scopes/access.yaml:31:5 (deny)
        why:         nothing deletes or moves files
        """,
        id="hidden-by-a-deny-rule",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "files__write_file", "--args", '{"path": "/srv/docs/a", "content": ""}'],
        1,
        """
        decision:    hidden
        agent:       support-bot
        tool:        files__write_file (upstream files, class destructive)
        why:         no allow rule of the agent's scopes (docs-reader, time:read) selects it
        """,
        id="hidden-not-granted",
    ),
    pytest.param(
        ["--agent", "support-bot", "--tool", "files__delete_file"],
        1,
        """
        decision:    hidden
        agent:       support-bot
        tool:        files__delete_file
        why:         no upstream advertises a tool named 'files__delete_file' in tools.lock
        """,
        id="hidden-not-advertised",
    ),
    pytest.param(
        ["--agent", "ghost", "--tool", "files__read_text_file"],
        1,
        """
        decision:    hidden
        agent:       ghost
        tool:        files__read_text_file (upstream files, class read)
        why:         the agent is refused: unknown agent 'ghost': it is not defined under `agents:` in any scope file
        """,
        id="unknown-agent",
    ),
    pytest.param(
        ["--agent", "retired-bot", "--tool", "files__read_text_file", "--args", '{"path": "/srv/docs/a"}'],
        1,
        """
        decision:    hidden
        agent:       retired-bot
        tool:        files__read_text_file (upstream files, class read)
        why:         the agent is refused: agent 'retired-bot' expired; its `expires` date has passed
        """,
        id="expired-agent",
    ),
    pytest.param(
        ["--agent", "staging-bot", "--tool", "files__read_text_file", "--args", '{"path": "/srv/docs/a"}'],
        1,
        """
        decision:    hidden
        agent:       staging-bot
        tool:        files__read_text_file (upstream files, class read)
        why:         the agent is refused: agent 'staging-bot' is not allowed in environment 'prod'
        """,
        id="agent-of-another-environment",
    ),
    pytest.param(
        ["--agent", "researcher", "--tool", "fetch__fetch", "--args", '{"url": "https://evil.example.net/"}'],
        1,
        """
        decision:    shadow-deny
        agent:       researcher
        tool:        fetch__fetch (upstream fetch, class destructive)
        scope:       web-reader
        rule:        scopes/access.yaml:18:9
        argument:    url
        constraint:  url
        why:         URL 'https://evil.example.net/' is not allowed: host 'evil.example.net' is not allowed
                     (shadow mode: the firewall would forward this call and record it as shadow-deny)
        """,
        id="shadow-deny",
    ),
    pytest.param(
        ["--agent", "trial-bot", "--tool", "files__create_directory", "--args", '{"path": "/etc/cron.d"}'],
        1,
        """
        decision:    shadow-deny
        agent:       trial-bot
        tool:        files__create_directory (upstream files, class write)
        scope:       trial-mkdir (shadow mode)
        rule:        scopes/trial.yaml:6:9
        argument:    path
        constraint:  within
        why:         path '/etc/cron.d' is not within /srv/docs/new
                     (shadow mode: the firewall would forward this call and record it as shadow-deny)
        """,
        id="shadow-scope",
    ),
    pytest.param(
        [
            "--agent",
            "release-bot",
            "--tool",
            "git__git_commit",
            "--args",
            '{"repo_path": "/srv/repos/site", "message": "Release 1.2"}',
        ],
        0,
        """
        decision:    allow
        agent:       release-bot
        tool:        git__git_commit (upstream git, class write)
        scope:       committer
        rule:        scopes/access.yaml:24:9
        constraints: repo_path: within ["/srv/repos/site"]
                     message: max_length 72
        """,
        id="allowed-every-constraint-listed",
    ),
    pytest.param(
        ["--agent", "release-bot", "--tool", "git__git_log", "--args", '{"repo_path": "/anywhere"}'],
        0,
        """
        decision:    allow
        agent:       release-bot
        tool:        git__git_log (upstream git, class read)
        scope:       committer
        rule:        scopes/access.yaml:28:9
        constraints: none: the rule grants the tool outright
        """,
        id="allowed-by-a-class-grant",
    ),
]


@pytest.mark.parametrize(("argv", "exit_code", "expected"), CHECKS)
def test_check_prints_the_decision_the_rule_that_decided_and_why(
    in_fixture: Path, capsys: pytest.CaptureFixture[str], argv: list[str], exit_code: int, expected: str
) -> None:
    code, out, err = run(capsys, "check", *argv)

    assert (code, out, err) == (exit_code, golden(expected), "")


def test_check_reads_the_config_named_by_the_flag_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(
        capsys, "check", "--config", str(FIXTURE / "firewall.yaml"), "--agent", "editor", "--tool", "files__read_file"
    )

    assert code == 1
    assert "no allow rule of the agent's scopes (docs-reader, drafts-writer) selects it" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('{"path": "/srv/docs/a",}', "--args is not valid JSON: Expecting property name enclosed in double quotes"),
        ("{'path': 1}", "--args is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ("", "--args is not valid JSON: Expecting value at line 1 column 1"),
        ('["/srv/docs/a"]', '--args must be a JSON object such as \'{"path": "/srv/docs/a.md"}\', not an array'),
        ('"x"', '--args must be a JSON object such as \'{"path": "/srv/docs/a.md"}\', not str'),
        ('{"path": "/a", "path": "/srv/docs/a"}', "--args has the key 'path' twice"),
        ('{"head": NaN}', "--args is not valid JSON: NaN is not a JSON number"),
    ],
)
def test_check_with_bad_args_is_a_usage_error_that_names_the_problem(
    in_fixture: Path, capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    code, out, err = run(capsys, "check", "--agent", "editor", "--tool", "files__read_text_file", "--args", args)

    assert (code, out) == (2, "")
    assert err.startswith(f"mcp-firewall: {message}")


def test_check_without_a_tool_is_a_usage_error(in_fixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "--agent", "editor"])

    assert exited.value.code == 2
    assert "the following arguments are required: --tool" in capsys.readouterr().err


def test_check_without_a_firewall_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCP_FIREWALL_CONFIG", raising=False)

    code, out, err = run(capsys, "check", "--agent", "editor", "--tool", "files__read_text_file")

    assert (code, out) == (2, "")
    assert "no firewall file at 'firewall.yaml'" in err


def test_an_invalid_scope_file_exits_2_so_it_never_reads_as_denied(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fixture_copy / "scopes" / "broken.yaml").write_text("agents:\n  x: {scopes: [no-such-scope]}\n", encoding="utf-8")

    code, out, err = run(capsys, "check", "--agent", "editor", "--tool", "files__read_text_file")

    assert (code, out) == (2, "")
    assert "scopes/broken.yaml:2:" in err


# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------

TOOLS = [
    pytest.param(
        "support-bot",
        """
        TOOL                        CLASS  SCOPE        CONSTRAINTS
        files__get_file_info        read   docs-reader  path: within ["/srv/docs"]
        files__list_directory       read   docs-reader  path: within ["/srv/docs"]
        files__read_multiple_files  read   docs-reader  paths[*]: within ["/srv/docs"]
        files__read_text_file       read   docs-reader  path: within ["/srv/docs"]
        files__search_files         read   docs-reader  path: within ["/srv/docs"]
        time__convert_time          read   time:read    unconstrained
        time__get_current_time      read   docs-reader  unconstrained
                                           time:read    unconstrained

        7 tools visible to support-bot, 22 hidden
        """,
        id="one-line-per-rule",
    ),
    pytest.param(
        "editor",
        """
        TOOL                        CLASS        SCOPE          CONSTRAINTS
        files__edit_file            destructive  drafts-writer  path: within ["/srv/docs/drafts"]
        files__get_file_info        read         docs-reader    path: within ["/srv/docs"]
        files__list_directory       read         docs-reader    path: within ["/srv/docs"]
        files__read_multiple_files  read         docs-reader    paths[*]: within ["/srv/docs"]
        files__read_text_file       read         docs-reader    path: within ["/srv/docs"]
        files__search_files         read         docs-reader    path: within ["/srv/docs"]
        files__write_file           destructive  drafts-writer  path: within ["/srv/docs/drafts"]
                                                                content: max_length 100000
        time__get_current_time      read         docs-reader    unconstrained

        8 tools visible to editor, 21 hidden
        """,
        id="one-line-per-constraint",
    ),
    pytest.param(
        "release-bot",
        """
        TOOL                    CLASS  SCOPE      CONSTRAINTS
        git__git_branch         read   committer  unconstrained
        git__git_commit         write  committer  repo_path: within ["/srv/repos/site"]
                                                  message: max_length 72
        git__git_diff           read   committer  unconstrained
        git__git_diff_staged    read   committer  unconstrained
        git__git_diff_unstaged  read   committer  unconstrained
        git__git_log            read   committer  unconstrained
        git__git_show           read   committer  unconstrained
        git__git_status         read   committer  unconstrained

        8 tools visible to release-bot, 21 hidden
        """,
        id="classes-from-trusted-annotations",
    ),
    pytest.param(
        "trial-bot",
        """
        TOOL                     CLASS  SCOPE                      CONSTRAINTS
        files__create_directory  write  trial-mkdir (shadow mode)  path: within ["/srv/docs/new"]

        1 tool visible to trial-bot, 28 hidden
        """,
        id="shadow-scope",
    ),
    pytest.param("idle-bot", "idle-bot sees no tools (29 hidden)\n", id="no-scopes"),
    pytest.param(
        "ghost",
        "ghost sees no tools: unknown agent 'ghost': it is not defined under `agents:` in any scope file\n",
        id="unknown-agent",
    ),
    pytest.param(
        "retired-bot",
        "retired-bot sees no tools: agent 'retired-bot' expired; its `expires` date has passed\n",
        id="expired-agent",
    ),
]


@pytest.mark.parametrize(("agent", "expected"), TOOLS)
def test_tools_lists_what_the_agent_sees_with_class_scope_and_constraints(
    in_fixture: Path, capsys: pytest.CaptureFixture[str], agent: str, expected: str
) -> None:
    code, out, err = run(capsys, "tools", "--agent", agent)

    assert (code, out, err) == (0, golden(expected), "")


def test_tools_marks_what_a_shadow_agent_sees_without_a_grant_and_reports_class_conflicts(
    in_fixture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tools", "--agent", "researcher")

    lines = out.splitlines()
    assert code == 0
    assert lines[:4] == [
        "TOOL                              CLASS        SCOPE          CONSTRAINTS",
        'fetch__fetch                      destructive  web-reader     url: url {"schemes": ["https"], "hosts": '
        '["docs.example.com", "*.example.org"]}',
        "                                                              raw: const false; required false",
        "files__create_directory           write        (not granted)  shadow-deny",
    ]
    assert lines[-2:] == [
        "28 tools visible to researcher, 1 hidden",
        "researcher is in shadow mode: it also sees tools (not granted); their calls are forwarded as shadow-deny",
    ]
    assert "files__move_file" not in out  # a deny rule hides it even in shadow mode
    assert err == (
        "mcp-firewall: fetch__fetch is listed under two classes (destructive: *etch; read: fetch); "
        "it is treated as destructive\n"
    )


# ---------------------------------------------------------------------------------------------
# Where the tool definitions come from
# ---------------------------------------------------------------------------------------------


def test_an_upstream_the_lock_does_not_know_is_reported_and_its_tools_are_unknown(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = json.loads((fixture_copy / "tools.lock").read_text(encoding="utf-8"))
    del lock["upstreams"]["time"]
    (fixture_copy / "tools.lock").write_text(json.dumps(lock), encoding="utf-8")
    note = (
        "mcp-firewall: upstream 'time' could not be reached, so its tools are unknown: "
        "tools.lock has no entry for it (run `mcp-firewall lock`)\n"
    )

    code, out, err = run(capsys, "check", "--agent", "support-bot", "--tool", "time__get_current_time")
    assert (code, err) == (2, note)
    assert out == golden(
        """
        decision:    unknown
        agent:       support-bot
        tool:        time__get_current_time
        why:         upstream 'time' could not be reached: tools.lock has no entry for it (run `mcp-firewall lock`)
        """
    )

    code, out, err = run(capsys, "check", "--agent", "support-bot", "--tool", "files__list_directory", "--args", "{}")
    assert (code, err) == (1, note)  # the other upstreams' tools are still decided
    assert "argument:    path" in out

    code, out, err = run(capsys, "tools", "--agent", "support-bot")
    assert (code, err) == (0, note)
    assert "time__" not in out
    assert out.endswith("5 tools visible to support-bot, 22 hidden\n")


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ('{"upstreams": {', "tools.lock:1:16: lock: not valid JSON: Expecting property name enclosed in double quotes"),
        ("[]", "tools.lock:1:1: lock: not a tools.lock"),
        ('{"version": 2, "upstreams": {}}', "tools.lock:1:1: lock: version 2"),
        ('{"version": 1, "upstreams": {"files": {"tools": [{}]}}}', "tools.lock:1:1: lock: upstreams.files.tools[0]"),
    ],
)
def test_a_malformed_lock_exits_2_and_says_where(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str], lock: str, message: str
) -> None:
    (fixture_copy / "tools.lock").write_text(lock, encoding="utf-8")

    code, out, err = run(capsys, "tools", "--agent", "support-bot")

    assert (code, out) == (2, "")
    assert message in err


def test_without_a_lock_an_unreachable_upstream_is_reported_and_its_tools_are_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no-such-server"
    (tmp_path / "firewall.yaml").write_text(
        f"upstreams:\n  files: {{command: {missing}}}\nscopes: [scopes.yaml]\n", encoding="utf-8"
    )
    (tmp_path / "scopes.yaml").write_text("agents:\n  bot: {scopes: [files:read]}\n", encoding="utf-8")

    code, out, err = run(capsys, "check", "--agent", "bot", "--tool", "files__read_text_file")

    assert code == 2
    assert out.startswith("decision:    unknown\n")
    assert err.startswith("mcp-firewall: upstream 'files' could not be reached, so its tools are unknown: ")
    assert "could not be started" in err and "restarting" not in err


@pytest.mark.anyio
async def test_without_a_lock_the_upstreams_are_asked_for_their_tools() -> None:
    servers = {"notes": lowlevel([tool("search"), tool("erase")], name="notes")}
    recorders = {"notes": Recorder()}
    specs = [UpstreamSpec("notes", "stdio", timeout_s=5), UpstreamSpec("gone", "stdio", command="/no/such/server")]

    definitions = await ask_upstreams(specs, timeout_s=5, open_transport_fn=_open_or_fail(servers, recorders))

    assert [(lists.name, [t["name"] for t in lists.tools]) for lists in definitions.lists] == [
        ("notes", ["search", "erase"])
    ]
    assert list(definitions.unknown) == ["gone"]
    assert set(definitions.catalog().tools) == {"notes__search", "notes__erase"}
    assert recorders["notes"].methods()[:3] == ["initialize", "notifications/initialized", "tools/list"]


def _open_or_fail(servers: dict[str, Any], recorders: dict[str, Recorder]) -> Callable[[UpstreamSpec], Any]:
    """In-memory servers by name; any other upstream cannot be started."""
    opener = memory_opener(servers, recorders)

    def open_transport(spec: UpstreamSpec) -> Any:
        if spec.name not in servers:
            raise OSError(f"cannot start {spec.command}")
        return opener(spec)

    return open_transport


def test_a_lock_entrys_hash_covers_exactly_the_pinned_fields_in_canonical_json() -> None:
    definition = {"name": "echo", "description": "Echoes.", "inputSchema": {"type": "object", "properties": {}}}
    canonical = '{"description":"Echoes.","inputSchema":{"properties":{},"type":"object"},"name":"echo"}'

    assert tool_hash(definition) == hashlib.sha256(canonical.encode()).hexdigest()
    assert tool_hash({**definition, "title": "Echo", "execution": {}}) == tool_hash(definition)
    assert tool_hash(dict(reversed(definition.items()))) == tool_hash(definition)
    assert tool_hash({**definition, "annotations": {"readOnlyHint": True}}) != tool_hash(definition)


def test_the_lock_document_round_trips_through_the_commands(
    fixture_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = [{"name": "get_current_time", "inputSchema": {"type": "object", "properties": {"timezone": {}}}}]
    document = lock_document([UpstreamLists("time", True, tools=tools)])
    (fixture_copy / "tools.lock").write_text(json.dumps(document), encoding="utf-8")

    assert document["upstreams"]["time"]["hashes"] == {"get_current_time": tool_hash(tools[0])}
    code, out, _ = run(capsys, "tools", "--agent", "support-bot")
    assert (code, out.splitlines()[1]) == (0, "time__get_current_time  read   docs-reader  unconstrained")
