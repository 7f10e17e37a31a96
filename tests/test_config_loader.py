"""The loader: files people write → models, or every problem at once as `FILE:LINE:COL: code: message`."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mcp_firewall.config import loader as loader_module
from mcp_firewall.config.envvars import expand_variables
from mcp_firewall.config.loader import find_scope_files, load_firewall_file, load_scope_files, validate
from mcp_firewall.config.model import (
    AllowRule,
    ArgConstraint,
    HttpUpstream,
    Scope,
    SseUpstream,
    StdioUpstream,
)
from mcp_firewall.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
UPSTREAMS = frozenset({"files", "time", "tickets", "fetch"})
ENVIRON = {"FIREWALL_PORT": "hunter2"}
INVALID = sorted(path.relative_to(FIXTURES).as_posix() for path in FIXTURES.glob("invalid/*/*.yaml"))


@pytest.fixture
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(FIXTURES)
    return FIXTURES


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _scope_issues(*paths: str | Path, upstreams: frozenset[str] | None = UPSTREAMS) -> list[str]:
    try:
        load_scope_files(list(paths), upstreams=upstreams)
    except ConfigError as exc:
        return [str(issue) for issue in exc.issues]
    return []


def _fixture_issues(fixture: str) -> list[str]:
    if fixture.startswith("invalid/firewall/"):
        return [str(issue) for issue in validate(fixture, ENVIRON)]
    return _scope_issues(fixture)


def _expected(fixture: str) -> list[str]:
    lines = (FIXTURES / fixture).read_text(encoding="utf-8").splitlines()
    return [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]


FIREWALL = """\
upstreams:
  files: {command: npx}
scopes: [scopes/]
"""

# ------------------------------------------------------------------------------------------- golden fixtures


@pytest.mark.parametrize("fixture", INVALID)
def test_each_invalid_fixture_reports_exactly_its_expected_issues(fixture: str, in_fixtures: Path) -> None:
    assert _fixture_issues(fixture) == _expected(fixture)


def test_every_issue_code_has_a_fixture() -> None:
    codes = {line.split(": ")[1] for fixture in INVALID for line in _expected(fixture)}
    assert codes >= {
        "parse_error",
        "duplicate_key",
        "empty_file",
        "schema_error",
        "read_error",
        "undefined_variable",
        "bad_variable",
        "bad_name",
        "bad_regex",
        "bad_schema",
        "bad_arg_path",
        "bad_dir",
        "bad_url_constraint",
        "bad_selector",
        "unknown_scope",
        "unknown_upstream",
        "unknown_agent",
        "tool_class_conflict",
    }


@pytest.mark.parametrize("fixture", INVALID)
def test_issue_positions_fall_inside_the_file(fixture: str, in_fixtures: Path) -> None:
    for line in _fixture_issues(fixture):
        file, line_no, column = line.split(":")[:3]
        text_lines = (FIXTURES / file).read_text(encoding="utf-8").splitlines() or [""]
        assert 1 <= int(line_no) <= len(text_lines) + 1
        assert 1 <= int(column) <= len(text_lines[min(int(line_no), len(text_lines)) - 1]) + 1


def test_an_expanded_value_is_never_echoed_in_a_message(in_fixtures: Path) -> None:
    issues = _fixture_issues("invalid/firewall/expanded_value_not_echoed.yaml")
    assert issues and not any("hunter2" in issue for issue in issues)


def test_an_unknown_key_names_the_key_and_the_keys_expected(in_fixtures: Path) -> None:
    assert _scope_issues("invalid/scopes/unknown_key.yaml") == [
        "invalid/scopes/unknown_key.yaml:5:9: schema_error: scopes.docs-reader.allow[0].alow: "
        "unknown key 'alow' (expected one of: tools, resources, prompts, args)"
    ]


# ------------------------------------------------------------------------------------------- valid files


def test_the_spec_example_loads_with_relative_paths_made_absolute(in_fixtures: Path) -> None:
    config = load_firewall_file("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"})
    base = FIXTURES / "valid"
    files, tickets, legacy = (config.firewall.upstreams[name] for name in ("files", "tickets", "legacy"))
    assert isinstance(files, StdioUpstream) and files.kind == "stdio"
    assert files.cwd == str(base) and files.env == {"LOG_LEVEL": "info"}
    assert isinstance(tickets, HttpUpstream) and tickets.headers == {"Authorization": "Bearer t0k"}
    assert isinstance(legacy, SseUpstream) and legacy.kind == "sse"
    assert config.firewall.scopes == [str(base / "scopes")]
    assert config.firewall.audit is not None and config.firewall.audit.path == str(base / "audit.jsonl")
    assert config.firewall.auth is not None and config.firewall.auth.keys == str(base / "keys.yaml")
    assert config.firewall.auth.jwt is not None
    assert config.firewall.auth.jwt.jwks == "https://idp.example.com/.well-known/jwks.json"
    assert config.path == base / "firewall.yaml"


def test_a_scope_folder_is_read_one_level_deep_and_its_tests_folder_is_skipped(in_fixtures: Path) -> None:
    config = load_firewall_file("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"})
    scopes = FIXTURES / "valid" / "scopes"
    assert config.scope_files == (scopes / "10-files.yaml", scopes / "20-agents.yml")
    assert find_scope_files([scopes]) == list(config.scope_files)


def test_scope_files_merge_and_deny_rules_concatenate_in_file_order(in_fixtures: Path) -> None:
    policy = load_firewall_file("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"}).policy
    assert list(policy.scopes) == ["docs-reader", "drafts-writer", "fetcher"]
    assert list(policy.agents) == ["support-bot", "editor", "researcher"]
    assert [rule.reason for rule in policy.deny] == ["nothing deletes or moves files", None]
    assert policy.scopes["fetcher"].mode == "shadow"


def test_loaded_objects_know_the_file_line_and_column_they_were_written_at(in_fixtures: Path) -> None:
    config = load_firewall_file("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"})
    policy = config.policy
    assert config.firewall.upstreams["tickets"].location == "valid/firewall.yaml:12:3"
    assert policy.servers["files"].location == "valid/scopes/10-files.yaml:3:3"
    assert policy.scopes["docs-reader"].location == "valid/scopes/10-files.yaml:13:3"
    assert policy.scopes["docs-reader"].allow[1].location == "valid/scopes/10-files.yaml:20:9"
    assert policy.scopes["docs-reader"].allow[0].args["paths[*]"].location == "valid/scopes/10-files.yaml:19:11"
    assert policy.deny[1].location == "valid/scopes/20-agents.yml:18:5"
    agent = policy.agents["editor"]
    assert agent.location == "valid/scopes/20-agents.yml:10:3"
    assert agent.source is not None and agent.source.short == "valid/scopes/20-agents.yml:10"


def test_validate_is_empty_for_a_valid_configuration(in_fixtures: Path) -> None:
    assert validate("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"}) == []


def test_arg_constraint_spec_returns_exactly_the_keys_written_by_their_spec_names(in_fixtures: Path) -> None:
    policy = load_firewall_file("valid/firewall.yaml", {"TICKETS_TOKEN": "t0k"}).policy
    args = policy.scopes["fetcher"].allow[0].args
    assert args["url"].spec() == {
        "url": {"schemes": ["https"], "hosts": ["docs.example.com", "*.example.org"], "ports": [443, 8443]}
    }
    assert args["note"].spec() == {"const": None, "required": False}
    assert args["headers"].spec() == {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}
    assert args["mode"].spec() == {"pattern": "^(fast|slow)$", "not_pattern": "debug"}
    assert args["retries"].spec() == {"min": 0, "max": 3}
    assert args["debug"].spec() == {"absent": True}


def test_a_missing_const_is_not_the_same_as_const_null() -> None:
    assert ArgConstraint.model_validate({"enum": [1]}).spec() == {"enum": [1]}
    assert ArgConstraint.model_validate({"const": None}).spec() == {"const": None}


# ------------------------------------------------------------------------------------------- ${VAR} expansion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${TOKEN}", "s3cret"),
        ("Bearer ${TOKEN}", "Bearer s3cret"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${TOKEN:-fallback}", "s3cret"),
        ("${UNSET:-}", ""),
        ("$${TOKEN}", "${TOKEN}"),
        ("cost: $5 and $HOME", "cost: $5 and $HOME"),
        ("${TOKEN}${TOKEN}", "s3crets3cret"),
    ],
)
def test_variables_expand_from_the_environment(text: str, expected: str) -> None:
    assert expand_variables(text, {"TOKEN": "s3cret", "EMPTY": ""}) == (expected, [])


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("${UNSET}", "undefined_variable"),
        ("${1X}", "bad_variable"),
        ("${OPEN", "bad_variable"),
        ("${A:?err}", "bad_variable"),
    ],
)
def test_unusable_variable_references_are_problems(text: str, code: str) -> None:
    _, problems = expand_variables(text, {})
    assert [problem.code for problem in problems] == [code]


def test_variables_expand_in_every_string_value_of_the_firewall_file(in_tmp: Path) -> None:
    _write(
        in_tmp / "fw" / "firewall.yaml",
        """\
upstreams:
  files:
    command: ${NPX:-npx}
    args: ["${ROOT}/docs"]
    env: {LEVEL: "${LEVEL}"}
    cwd: ${WORKDIR}
  tickets:
    url: https://${HOST}/mcp
    headers: {Authorization: "Bearer ${TOKEN}"}
scopes: []
environment: ${DEPLOY:-dev}
listen: {transport: http, port: "${PORT}"}
""",
    )
    environ = {
        "ROOT": "/srv",
        "LEVEL": "debug",
        "WORKDIR": "work",
        "HOST": "t.example.com",
        "TOKEN": "x",
        "PORT": "8080",
    }
    firewall = load_firewall_file("fw/firewall.yaml", environ).firewall
    files, tickets = firewall.upstreams["files"], firewall.upstreams["tickets"]
    assert isinstance(files, StdioUpstream) and isinstance(tickets, HttpUpstream)
    assert (files.command, files.args, files.env) == ("npx", ["/srv/docs"], {"LEVEL": "debug"})
    assert files.cwd == str(in_tmp / "fw" / "work")
    assert (tickets.url, tickets.headers) == ("https://t.example.com/mcp", {"Authorization": "Bearer x"})
    assert (firewall.environment, firewall.listen.port) == ("dev", 8080)


def test_a_scope_path_with_an_undefined_variable_is_reported_once_and_not_read(in_tmp: Path) -> None:
    _write(in_tmp / "firewall.yaml", 'upstreams:\n  files: {command: npx}\nscopes: ["${SCOPES}"]\n')
    assert [(i.line, i.column, i.code) for i in validate("firewall.yaml", {})] == [(3, 10, "undefined_variable")]


def test_scope_files_are_never_expanded(in_tmp: Path) -> None:
    _write(
        in_tmp / "a.yaml",
        """\
scopes:
  s:
    description: "uses ${HOME}"
    allow: [{tools: ["${TOOL}"]}]
""",
    )
    scope = load_scope_files(["a.yaml"]).scopes["s"]
    assert scope.description == "uses ${HOME}"
    assert scope.allow[0].selectors == ["${TOOL}"]


# ------------------------------------------------------------------------------------------- merging


def test_an_agent_may_hold_a_scope_defined_in_another_file(in_tmp: Path) -> None:
    _write(in_tmp / "scopes" / "a.yaml", "scopes:\n  s:\n    allow: [{tools: [files:read]}]\n")
    _write(in_tmp / "scopes" / "b.yaml", "agents:\n  bot:\n    scopes: [s, files:write]\n")
    _write(in_tmp / "firewall.yaml", FIREWALL)
    policy = load_firewall_file("firewall.yaml", {}).policy
    assert policy.agents["bot"].scopes == ["s", "files:write"]


@pytest.mark.parametrize(
    ("section", "entry", "label"),
    [
        ("scopes", "x:\n    allow: []", "scope"),
        ("agents", "x:\n    scopes: []", "agent"),
        ("servers", "files: {}", "server policy"),
    ],
)
def test_the_same_name_in_two_files_is_reported_with_both_places(
    in_tmp: Path, section: str, entry: str, label: str
) -> None:
    _write(in_tmp / "a.yaml", f"# a\n{section}:\n  {entry}\n")
    _write(in_tmp / "b.yaml", f"# b\n\n\n\n\n{section}:\n  {entry}\n")
    name = entry.split(":")[0]
    assert _scope_issues("a.yaml", "b.yaml") == [
        f"b.yaml:7:3: duplicate_definition: {label} {name!r} is defined twice: a.yaml:3:3 and b.yaml:7:3"
    ]


def test_a_file_named_twice_is_read_once(in_tmp: Path) -> None:
    _write(in_tmp / "scopes" / "a.yaml", "scopes:\n  s:\n    allow: [{tools: [files:read]}]\n")
    assert list(load_scope_files(["scopes", "scopes/a.yaml"]).scopes) == ["s"]


def test_a_broken_scope_file_does_not_cause_false_dangling_name_reports(in_tmp: Path) -> None:
    _write(in_tmp / "a.yaml", "scopes:\n  s:\n    alow: []\n")
    _write(in_tmp / "b.yaml", "agents:\n  bot:\n    scopes: [s]\n")
    issues = _scope_issues("a.yaml", "b.yaml")
    assert [issue.split(": ")[1] for issue in issues] == ["schema_error", "schema_error"]


def test_issues_from_the_firewall_file_and_scope_files_come_together_sorted(in_tmp: Path) -> None:
    _write(in_tmp / "firewall.yaml", FIREWALL + "listen: {transport: tcp}\n")
    _write(in_tmp / "scopes" / "b.yaml", "agents:\n  bot:\n    scopes: [nope]\n")
    _write(in_tmp / "scopes" / "a.yaml", "scopes:\n  s:\n    allow: [{tools: [fils:read]}]\n")
    assert [(i.file, i.line, i.column, i.code) for i in validate("firewall.yaml", {})] == [
        ("firewall.yaml", 4, 21, "schema_error"),
        ("scopes/a.yaml", 3, 22, "unknown_upstream"),
        ("scopes/b.yaml", 3, 14, "unknown_scope"),
    ]


def test_without_a_firewall_file_any_upstream_class_scope_is_accepted(in_tmp: Path) -> None:
    _write(in_tmp / "a.yaml", "servers:\n  anything: {}\nagents:\n  bot:\n    scopes: [whatever:read]\n")
    assert _scope_issues("a.yaml", upstreams=None) == []


# ------------------------------------------------------------------------------------------- files and YAML


def test_a_missing_firewall_file_is_a_read_error(in_tmp: Path) -> None:
    assert [str(issue) for issue in validate("nope.yaml", {})] == [
        "nope.yaml:1:1: read_error: cannot read nope.yaml: No such file or directory"
    ]


def test_a_file_that_is_not_utf8_is_a_read_error(in_tmp: Path) -> None:
    (in_tmp / "a.yaml").write_bytes(b"scopes: {}\n\xff\n")
    assert _scope_issues("a.yaml") == ["a.yaml:1:1: read_error: a.yaml is not UTF-8 text (byte 0xff at offset 11)"]


def test_a_duplicate_key_in_the_firewall_file_points_at_the_second_key(in_tmp: Path) -> None:
    _write(in_tmp / "firewall.yaml", "upstreams:\n  files: {command: npx}\n  files: {command: uvx}\nscopes: []\n")
    assert [str(issue) for issue in validate("firewall.yaml", {})] == [
        "firewall.yaml:3:3: duplicate_key: duplicate key 'files': first defined at line 2, column 3; "
        "YAML would silently keep only one of them"
    ]


def test_a_merge_key_may_be_overridden_without_a_duplicate_key_report(in_tmp: Path) -> None:
    _write(
        in_tmp / "a.yaml",
        """\
agents:
  base: &base {scopes: [files:read], owner: ops@example.com}
  bot:
    <<: *base
    scopes: [files:write]
""",
    )
    agents = load_scope_files(["a.yaml"], upstreams=UPSTREAMS).agents
    assert (agents["bot"].scopes, agents["bot"].owner) == (["files:write"], "ops@example.com")


# ------------------------------------------------------------------------------------------- expires


@pytest.mark.parametrize(
    ("written", "expires", "refused_from"),
    [
        ("2027-06-30", date(2027, 6, 30), datetime(2027, 7, 1, tzinfo=UTC)),
        ('"2027-06-30"', date(2027, 6, 30), datetime(2027, 7, 1, tzinfo=UTC)),
        ("2027-06-30T18:00:00Z", datetime(2027, 6, 30, 18, tzinfo=UTC), datetime(2027, 6, 30, 18, tzinfo=UTC)),
        (
            '"2027-06-30T18:00:00+02:00"',
            datetime(2027, 6, 30, 18, tzinfo=timezone(timedelta(hours=2))),
            datetime(2027, 6, 30, 16, tzinfo=UTC),
        ),
    ],
)
def test_expires_takes_a_date_or_a_zoned_date_time(
    in_tmp: Path, written: str, expires: date, refused_from: datetime
) -> None:
    _write(in_tmp / "a.yaml", f"agents:\n  bot:\n    scopes: [files:read]\n    expires: {written}\n")
    agent = load_scope_files(["a.yaml"], upstreams=UPSTREAMS).agents["bot"]
    assert agent.expires == expires and type(agent.expires) is type(expires)
    assert agent.expires_at == refused_from


# ------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"command": "npx"}, "stdio"),
        ({"url": "https://x/mcp"}, "http"),
        ({"url": "https://x/mcp", "transport": "http"}, "http"),
        ({"url": "https://x/sse", "transport": "sse"}, "sse"),
    ],
)
def test_an_upstream_kind_follows_command_url_and_transport(entry: dict[str, str], kind: str) -> None:
    from mcp_firewall.config.model import FirewallFile

    firewall = FirewallFile.model_validate({"upstreams": {"u": entry}, "scopes": []})
    assert firewall.upstreams["u"].kind == kind


def test_models_are_equal_by_value_whatever_their_location(in_tmp: Path) -> None:
    _write(in_tmp / "a.yaml", "scopes:\n  s:\n    allow: [{tools: [t]}]\n")
    _write(in_tmp / "b.yaml", "\n\nscopes:\n  s:\n    allow:\n      - tools: [t]\n")
    a, b = (load_scope_files([name]).scopes["s"] for name in ("a.yaml", "b.yaml"))
    assert a.location != b.location
    assert a == b


def test_an_object_built_in_code_has_an_unknown_location() -> None:
    scope = Scope(allow=[AllowRule(tools=["t"])])
    assert (scope.location, scope.source) == ("<unknown>", None)


@pytest.mark.parametrize("name", ["model", "loader", "schema", "envvars"])
def test_every_public_name_is_defined(name: str) -> None:
    module = importlib.import_module(f"mcp_firewall.config.{name}")
    assert all(hasattr(module, attr) for attr in module.__all__)


def test_loader_exports_its_entry_points() -> None:
    assert {"load_firewall_file", "load_scope_files", "validate", "LoadedConfig"} <= set(loader_module.__all__)
