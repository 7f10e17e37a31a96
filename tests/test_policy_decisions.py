"""SPEC §4, step by step: what the policy decides for one agent's `tools/call`.

The catalog is built from what real servers advertise (tests/fixtures/policy/peers/) plus a few
hand-written `lab` tools for the cases no real server shows; the scope files are
tests/fixtures/policy/decisions/. Each table row is one sentence of the SPEC.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.peers import FIXTURES, UPSTREAMS, catalog

from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.config.model import ScopeFile
from mcp_firewall.policy import compile as compile_module
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.classify import CLASSES, Classification
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.policy.decision import Decision

SCOPES_FILE = "policy/decisions/scopes.yaml"


@cache
def policy() -> Policy:
    return compile_policy(load_scope_files([FIXTURES / "decisions"], upstreams=UPSTREAMS), upstreams=UPSTREAMS)


@cache
def view(agent: str) -> PolicyView:
    return PolicyView(policy(), agent, catalog())


def decide(agent: str, tool: str, arguments: dict[str, Any] | None = None) -> Decision:
    return view(agent).check_tool(tool, arguments or {})[0]


def listed(agent_view: PolicyView) -> set[str]:
    return {tool["name"] for tool in agent_view.tools()}


def policy_with(tmp_path: Path, scope_yaml: str, *, environment: str | None = None) -> Policy:
    """The fixture's `servers:` plus one more scope file written for the test."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(textwrap.dedent(scope_yaml), encoding="utf-8")
    scopes = load_scope_files([FIXTURES / "decisions" / "servers.yaml", extra], upstreams=UPSTREAMS)
    return compile_policy(scopes, upstreams=UPSTREAMS, environment=environment)


def freeze_clock(monkeypatch: pytest.MonkeyPatch, instant: str) -> None:
    now = datetime.fromisoformat(instant).timestamp()
    monkeypatch.setattr(compile_module, "time", SimpleNamespace(time=lambda: now))


# ---------------------------------------------------------------------------------------------
# Step 1: an unknown, expired or misplaced agent is refused
# ---------------------------------------------------------------------------------------------

REFUSED = [
    pytest.param("agents: {someone: {scopes: [files:read]}}", None, "unknown agent 'bot'", id="unknown"),
    pytest.param(
        "agents: {bot: {scopes: [files:read], expires: 2026-12-03}}", None, "agent 'bot' expired", id="expired-date"
    ),
    pytest.param(
        "agents: {bot: {scopes: [files:read], expires: '2026-12-04T11:00:00+02:00'}}",
        None,
        "agent 'bot' expired",
        id="expired-datetime",
    ),
    pytest.param(
        "agents: {bot: {scopes: [files:read], environments: [staging]}}",
        "prod",
        "not allowed in environment 'prod'",
        id="other-environment",
    ),
    pytest.param(
        "agents: {bot: {scopes: [files:read], environments: [prod]}}",
        None,
        "the firewall file sets no `environment`",
        id="environments-but-firewall-sets-none",
    ),
]


@pytest.mark.parametrize(("scope_yaml", "environment", "refusal"), REFUSED)
def test_a_refused_agent_sees_empty_lists_and_every_call_is_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope_yaml: str, environment: str | None, refusal: str
) -> None:
    freeze_clock(monkeypatch, "2026-12-04T12:00:00+00:00")
    refused = policy_with(tmp_path, scope_yaml, environment=environment)
    agent_view = refused.view("bot", catalog())

    assert refusal in (refused.refusal("bot") or "")
    assert (agent_view.tools(), agent_view.prompts(), agent_view.resources(), agent_view.templates()) == (
        [],
        [],
        [],
        [],
    )
    for tool in catalog().tools:
        assert agent_view.check_tool(tool, {"path": "/srv/docs/a"}) == (Decision("hidden", "not granted"), None)
    assert agent_view.check_resource("demo://resource/static/document/features.md")[0].outcome == "hidden"
    assert refused.check_upstream_request("bot", "everything", "sampling/createMessage").outcome == "deny"


@pytest.mark.parametrize(
    ("environments", "environment"),
    [("[prod, staging]", "prod"), ("[prod, staging]", "staging"), (None, "prod"), (None, None)],
)
def test_an_agent_is_served_where_its_environments_include_the_firewalls(
    tmp_path: Path, environments: str | None, environment: str | None
) -> None:
    where = f", environments: {environments}" if environments else ""
    served = policy_with(tmp_path, f"agents: {{bot: {{scopes: [files:read]{where}}}}}", environment=environment)

    assert served.refusal("bot") is None
    assert "files__read_text_file" in listed(served.view("bot", catalog()))


@pytest.mark.parametrize(
    ("expires", "now", "served"),
    [
        pytest.param("2027-06-30", "2027-06-30T00:00:00+00:00", True, id="date-at-its-start"),
        pytest.param("2027-06-30", "2027-06-30T23:59:59.999+00:00", True, id="date-through-end-of-day-utc"),
        pytest.param("2027-06-30", "2027-07-01T00:00:00+00:00", False, id="date-next-midnight-utc"),
        pytest.param("2027-06-30", "2027-07-01T01:30:00+02:00", True, id="date-is-utc-not-local"),
        pytest.param("'2027-06-30'", "2027-06-30T23:59:59+00:00", True, id="quoted-date"),
        pytest.param("'2027-06-30'", "2027-07-01T00:00:00+00:00", False, id="quoted-date-expired"),
        pytest.param("'2027-06-30T18:00:00+02:00'", "2027-06-30T15:59:59+00:00", True, id="datetime-before"),
        pytest.param("'2027-06-30T18:00:00+02:00'", "2027-06-30T16:00:00+00:00", False, id="datetime-exact"),
        pytest.param("'2027-06-30T16:00:00Z'", "2027-06-30T16:00:00+00:00", False, id="datetime-zulu"),
    ],
)
def test_expires_is_a_utc_day_or_an_exact_instant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expires: str, now: str, served: bool
) -> None:
    timed = policy_with(tmp_path, f"agents: {{bot: {{scopes: [files:read], expires: {expires}}}}}")
    freeze_clock(monkeypatch, now)

    assert (timed.refusal("bot") is None) is served
    agent_view = timed.view("bot", catalog())
    assert ("files__read_text_file" in listed(agent_view)) is served
    outcome = agent_view.check_tool("files__read_text_file", {"path": "/srv/docs/a"})[0].outcome
    assert outcome == ("allow" if served else "hidden")


def test_an_agent_that_expires_while_connected_sees_an_empty_list_and_every_call_is_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = policy_with(tmp_path, "agents: {bot: {scopes: [files:read], expires: 2027-06-30}}")
    freeze_clock(monkeypatch, "2027-06-30T23:59:00+00:00")
    agent_view = timed.view("bot", catalog())
    assert agent_view.check_tool("files__read_text_file", {"path": "/x"})[0].outcome == "allow"

    freeze_clock(monkeypatch, "2027-07-01T00:00:01+00:00")

    assert agent_view.tools() == []
    assert agent_view.check_tool("files__read_text_file", {"path": "/x"})[0].outcome == "hidden"


# ---------------------------------------------------------------------------------------------
# Step 2: hidden — not advertised, denied by a deny rule, or selected by no allow rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tool",
    [
        "files__delete_everything",  # no upstream advertises it
        "files__read_text_file_v2",
        "read_text_file",  # the upstream's own name is not the exposed name
        "FILES__read_text_file",  # names are case-sensitive
        "files_read_text_file",
        "",
    ],
)
def test_a_tool_no_upstream_advertises_is_hidden(tool: str) -> None:
    assert decide("lab-admin", tool) == Decision("hidden", "not granted")
    assert decide("support-bot", tool, {"path": "/srv/docs/a"}).outcome == "hidden"


@pytest.mark.parametrize(
    ("agent", "tool", "reason"),
    [
        pytest.param("memory-admin", "memory__delete_entities", "nothing deletes or moves files", id="glob"),
        pytest.param("files-destroyer", "files__move_file", "nothing deletes or moves files", id="exact-name"),
        pytest.param("memory-admin", "memory__open_nodes", "memory agents never destroy", id="class-and-agent-glob"),
        pytest.param("memory-user", "memory__open_nodes", "memory agents never destroy", id="class-not-granted-anyway"),
        pytest.param("contractor", "lab__strict", "contractors do not touch these", id="named-agent-over-glob-grant"),
        pytest.param("contractor", "lab__drop_record", "contractors do not touch these", id="named-agent-destructive"),
    ],
)
def test_a_deny_rule_hides_a_tool_whatever_grants_it(agent: str, tool: str, reason: str) -> None:
    agent_view = view(agent)

    assert decide(agent, tool, {}).outcome == "hidden"
    assert tool not in listed(agent_view)
    assert agent_view.hidden_reasons[tool] == reason


def test_a_deny_rule_applies_only_to_the_agents_it_names() -> None:
    assert decide("lab-admin", "lab__strict", {"name": "x"}).outcome == "allow"
    assert decide("contractor", "lab__strict", {"name": "x"}).outcome == "hidden"
    assert decide("lab-destroyer", "lab__drop_record", {"path": "/x"}).outcome == "allow"


@pytest.mark.parametrize(
    ("agent", "tool"),
    [
        ("support-bot", "files__write_file"),  # docs-reader grants files:read only
        ("support-bot", "files__read_file"),  # unlisted under files: destructive, not read
        ("support-bot", "time__convert_time"),  # time:read does not cover an unclassified tool
        ("dev", "git__git_reset"),  # git:read, and a named grant of git_commit only
        ("git-reader", "git__git_commit"),
        ("files-writer", "files__write_file"),  # U:write does not include destructive tools
        ("lab-writer", "lab__drop_record"),
        ("nobody", "lab__get_status"),  # an agent with no scopes
        ("nobody", "time__get_current_time"),
    ],
)
def test_a_tool_no_allow_rule_selects_is_hidden(agent: str, tool: str) -> None:
    assert decide(agent, tool).outcome == "hidden"
    assert tool not in listed(view(agent))
    assert view(agent).hidden_reasons[tool] == "no allow rule of the agent's scopes selects it"


# ---------------------------------------------------------------------------------------------
# Step 3: arguments must match the tool's inputSchema and declare nothing more
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "tool", "arguments", "argument"),
    [
        pytest.param("support-bot", "files__read_text_file", {"path": 7}, "path", id="wrong-type"),
        pytest.param("support-bot", "files__read_text_file", {}, "path", id="missing-required"),
        pytest.param("support-bot", "files__read_text_file", {"path": "/srv/docs/a", "head": "3"}, "head", id="number"),
        pytest.param("support-bot", "time__get_current_time", {"timezone": None}, "timezone", id="null"),
        pytest.param("support-bot", "files__read_multiple_files", {"paths": []}, "paths", id="min-items"),
        pytest.param("browser", "fetch__fetch", {"url": "https://docs.example.com", "max_length": 0}, "max_length"),
        pytest.param("lab-admin", "lab__open_schema", {"name": "x", "extra": 1}, "extra", id="additional-schema"),
        pytest.param("lab-admin", "lab__patterned", {"name": "x", "x-y": 1}, "x-y", id="pattern-properties"),
        pytest.param("lab-admin", "lab__broken", {"name": "x"}, None, id="tool-schema-itself-invalid"),
        pytest.param("lab-admin", "lab__broken", {}, None, id="tool-schema-invalid-no-arguments"),
    ],
)
def test_arguments_that_do_not_match_the_input_schema_are_denied(
    agent: str, tool: str, arguments: dict[str, Any], argument: str | None
) -> None:
    decision = decide(agent, tool, arguments)

    assert (decision.outcome, decision.argument, decision.constraint) == ("deny", argument, "inputSchema")
    assert tool in listed(view(agent))  # denied, not hidden: the agent may correct itself


@pytest.mark.parametrize(
    ("agent", "tool", "arguments", "undeclared"),
    [
        pytest.param(
            "support-bot", "files__read_text_file", {"path": "/srv/docs/a", "x": 1}, "x", id="additional-false"
        ),
        pytest.param("support-bot", "time__get_current_time", {"timezone": "UTC", "verbose": True}, "verbose"),
        pytest.param("browser", "fetch__fetch", {"url": "https://docs.example.com", "proxy": "h"}, "proxy"),
        pytest.param("lab-admin", "lab__silent", {"name": "x", "extra": "y"}, "extra", id="additional-absent"),
        pytest.param("lab-admin", "lab__get_or_drop", {"anything": 1}, "anything", id="empty-properties"),
        pytest.param("lab-admin", "lab__hinted_read", {"a": 1}, "a", id="no-properties-at-all"),
    ],
)
def test_an_argument_the_schema_does_not_declare_is_denied_without_additional_properties(
    agent: str, tool: str, arguments: dict[str, Any], undeclared: str
) -> None:
    decision = decide(agent, tool, arguments)

    assert (decision.outcome, decision.argument, decision.constraint) == ("deny", undeclared, "inputSchema")
    assert f"argument {undeclared!r} is not declared" in decision.reason


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        pytest.param("lab__open_true", {"name": "x", "extra": [1, 2]}, id="additionalProperties-true"),
        pytest.param("lab__open_schema", {"name": "x", "extra": "y"}, id="additionalProperties-schema"),
        pytest.param("lab__patterned", {"name": "x", "y": "anything"}, id="patternProperties"),
        pytest.param("lab__patterned", {"x-trace": "abc"}, id="patternProperties-matched"),
    ],
)
def test_a_schema_that_explicitly_allows_more_admits_undeclared_arguments(tool: str, arguments: dict[str, Any]) -> None:
    assert decide("lab-admin", tool, arguments).outcome == "allow"


def test_the_input_schema_is_checked_before_any_constraint() -> None:
    decision = decide("support-bot", "files__read_text_file", {"path": "/etc/passwd", "x": 1})

    assert (decision.argument, decision.constraint) == ("x", "inputSchema")


def test_a_denial_for_input_names_no_scope_or_rule() -> None:
    decision = decide("support-bot", "files__read_text_file", {"path": 1})

    assert (decision.scope, decision.rule) == (None, None)
    assert decision.reason.startswith("arguments do not match the tool's inputSchema at path:")


# ---------------------------------------------------------------------------------------------
# Step 4: allowed when some allow rule selecting the tool holds; otherwise denied
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "tool", "arguments", "scope", "line"),
    [
        ("support-bot", "files__read_text_file", {"path": "/srv/docs/guide.md"}, "docs-reader", 6),
        ("support-bot", "files__read_text_file", {"path": "/srv/docs"}, "docs-reader", 6),
        ("support-bot", "files__read_text_file", {"path": "/srv/docs/a", "head": 10}, "docs-reader", 6),
        ("support-bot", "files__read_multiple_files", {"paths": ["/srv/docs/a", "/srv/docs/b/c"]}, "docs-reader", 6),
        ("support-bot", "files__search_files", {"path": "/srv/docs", "pattern": "*.md"}, "docs-reader", 6),
        ("support-bot", "time__get_current_time", {"timezone": "Europe/Paris"}, "docs-reader", 10),
        ("editor", "files__write_file", {"path": "/srv/docs/drafts/a.md", "content": "hello"}, "drafts-writer", 15),
        (
            "editor",
            "files__edit_file",
            {"path": "/srv/docs/drafts/a.md", "edits": [{"oldText": "a", "newText": "b"}]},
            "drafts-writer",
            15,
        ),
        ("dev", "git__git_status", {"repo_path": "/srv/repos/site"}, "repo-reader", 22),
        ("dev", "git__git_commit", {"repo_path": "/srv/repos/site", "message": "Fix typo"}, "committer", 27),
        ("browser", "fetch__fetch", {"url": "https://docs.example.com/a?b=c"}, "web", 33),
        ("browser", "fetch__fetch", {"url": "https://a.b.example.org/", "max_length": 100, "raw": False}, "web", 33),
        ("browser", "fetch__fetch", {"url": "https://DOCS.example.COM./x"}, "web", 33),
        ("browser", "fetch__fetch", {"url": "https://10.0.0.1/"}, "web", 33),
        ("local-browser", "fetch__fetch", {"url": "http://127.0.0.1:8080/x"}, "local-web", 43),
        ("nester", "lab__nested", {"options": {"mode": "fast"}, "edits": [{"path": "/data/a"}]}, "lab-nested", 60),
        ("nester", "lab__nested", {"options": {"mode": "slow"}, "edits": []}, "lab-nested", 60),  # [*] of nothing
        ("tuner", "lab__tune", {"mode": "slow", "level": 10, "label": "abc", "tags": ["a"]}, "lab-tuning", 66),
        (
            "tuner",
            "lab__tune",
            {"mode": "fast", "level": 1, "label": "a", "tags": [], "token": "t0k3n"},
            "lab-tuning",
            66,
        ),
    ],
)
def test_a_call_is_allowed_when_a_rule_selecting_it_holds(
    agent: str, tool: str, arguments: dict[str, Any], scope: str, line: int
) -> None:
    decision = decide(agent, tool, arguments)

    assert (decision.outcome, decision.scope) == ("allow", scope)
    assert decision.rule is not None and decision.rule.endswith(f"{SCOPES_FILE}:{line}:9")


@pytest.mark.parametrize(
    ("agent", "tool", "arguments", "argument", "constraint"),
    [
        ("support-bot", "files__read_text_file", {"path": "/etc/passwd"}, "path", "within"),
        ("support-bot", "files__read_text_file", {"path": "/srv/docs2/a"}, "path", "within"),
        ("support-bot", "files__read_text_file", {"path": "/srv/docs/../etc/passwd"}, "path", "within"),
        ("support-bot", "files__read_text_file", {"path": "/srv/docs//a"}, "path", "within"),
        ("support-bot", "files__read_text_file", {"path": "srv/docs/a"}, "path", "within"),
        ("support-bot", "files__read_multiple_files", {"paths": ["/srv/docs/a", "/etc/b"]}, "paths[1]", "within"),
        ("editor", "files__write_file", {"path": "/srv/docs/a.md", "content": "x"}, "path", "within"),
        ("editor", "files__write_file", {"path": "/srv/docs/drafts/a", "content": "x" * 1001}, "content", "max_length"),
        (
            "editor",
            "files__edit_file",
            {"path": "/srv/docs/drafts/a", "edits": [{"oldText": "a", "newText": "b" * 1001}]},
            "edits[0].newText",
            "max_length",
        ),
        ("dev", "git__git_commit", {"repo_path": "/srv/repos/site", "message": "WIP: x"}, "message", "not_pattern"),
        ("dev", "git__git_commit", {"repo_path": "/srv/repos/site", "message": "x" * 73}, "message", "max_length"),
        ("dev", "git__git_commit", {"repo_path": "/srv/repos/other", "message": "x"}, "repo_path", "within"),
        ("dev", "git__git_log", {"repo_path": "/home/me/repo"}, "repo_path", "within"),
        ("browser", "fetch__fetch", {"url": "https://example.org/"}, "url", "url"),
        ("browser", "fetch__fetch", {"url": "http://docs.example.com/"}, "url", "url"),
        ("browser", "fetch__fetch", {"url": "https://docs.example.com:8443/"}, "url", "url"),
        ("browser", "fetch__fetch", {"url": "https://docs.example.com@evil.com/"}, "url", "url"),
        ("browser", "fetch__fetch", {"url": "https://10.0.0.2/"}, "url", "url"),
        ("browser", "fetch__fetch", {"url": "https://docs.example.com/", "raw": True}, "raw", "const"),
        ("browser", "fetch__fetch", {"url": "https://docs.example.com/", "max_length": 20001}, "max_length", "max"),
        ("local-browser", "fetch__fetch", {"url": "http://127.0.0.1/x"}, "url", "url"),
        ("tuner", "lab__tune", {"mode": "debug"}, "mode", "enum"),
        ("tuner", "lab__tune", {"mode": "fast", "level": 11}, "level", "max"),
        ("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "ABC"}, "label", "pattern"),
        ("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "abcdefghi"}, "label", "max_length"),
        ("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "a", "tags": list("abcd")}, "tags", "max_length"),
        ("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "a", "tags": [], "token": "x"}, "token", "const"),
        ("tuner", "lab__tune", {"mode": "fast"}, "level", "required"),
        ("record-reader", "lab__get_record", {}, "path", "required"),
        ("nester", "lab__nested", {"options": {"mode": "turbo"}}, "options.mode", "enum"),
        ("nester", "lab__nested", {"options": {}}, "options.mode", "required"),
        (
            "nester",
            "lab__nested",
            {"options": {"mode": "fast"}, "edits": [{"path": "/data/a"}, {"path": "/etc/x"}]},
            "edits[1].path",
            "within",
        ),
    ],
)
def test_a_failing_constraint_denies_and_names_the_argument_and_constraint(
    agent: str, tool: str, arguments: dict[str, Any], argument: str, constraint: str
) -> None:
    decision = decide(agent, tool, arguments)

    assert (decision.outcome, decision.argument, decision.constraint) == ("deny", argument, constraint)
    assert decision.scope is not None and decision.rule is not None and decision.reason


def test_a_denial_never_echoes_a_secret_value() -> None:
    decision = decide("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "a", "tags": [], "token": "hunter2"})

    assert decision.argument == "token"
    assert "hunter2" not in decision.reason and "t0k3n" not in decision.reason


@pytest.mark.parametrize(
    ("arguments", "outcome", "line"),
    [
        pytest.param({"mode": "fast", "level": 50}, "allow", 75, id="first-rule-holds"),
        pytest.param({"mode": "slow", "level": 3}, "allow", 78, id="second-rule-holds"),
        pytest.param({"mode": "fast", "level": 3}, "allow", 75, id="both-hold-first-wins"),
        pytest.param({"mode": "slow", "level": 30}, "deny", 75, id="none-holds-first-failure-reported"),
    ],
)
def test_rules_combine_as_a_union(arguments: dict[str, Any], outcome: str, line: int) -> None:
    decision = decide("two-ways", "lab__tune", arguments)

    assert decision.outcome == outcome
    assert decision.rule is not None and decision.rule.endswith(f":{line}:9")


@pytest.mark.parametrize(
    ("agent", "tool", "scope"),
    [
        ("record-reader", "lab__get_status", "lab-records"),
        ("support-bot", "files__list_allowed_directories", "docs-reader"),
    ],
)
def test_a_class_grant_constrained_on_path_also_grants_class_tools_without_path(
    agent: str, tool: str, scope: str
) -> None:
    decision = decide(agent, tool, {})

    assert (decision.outcome, decision.scope) == ("allow", scope)
    assert tool in listed(view(agent))


def test_a_constraint_on_an_argument_the_tool_does_not_declare_is_ignored_for_that_tool() -> None:
    assert decide("ghost", "lab__get_status", {}).outcome == "allow"
    assert decide("ghost", "lab__get_status", {"verbose": True}).outcome == "allow"
    # ... which does not let the agent pass that argument: step 3 still refuses it
    denied = decide("ghost", "lab__get_status", {"path": "/etc"})
    assert (denied.outcome, denied.argument, denied.constraint) == ("deny", "path", "inputSchema")


def test_a_constraint_with_required_false_lets_the_argument_be_absent() -> None:
    assert decide("browser", "fetch__fetch", {"url": "https://docs.example.com/"}).outcome == "allow"
    assert decide("tuner", "lab__tune", {"mode": "fast", "level": 1, "label": "a", "tags": []}).outcome == "allow"


def test_a_tool_selector_by_name_grants_the_tool_whatever_its_class() -> None:
    assert decide("editor", "files__write_file", {"path": "/srv/docs/drafts/a", "content": ""}).outcome == "allow"
    assert decide("lab-admin", "lab__drop_record", {"path": "/x"}).outcome == "allow"


# ---------------------------------------------------------------------------------------------
# Classes, and the built-in U:read / U:write / U:destructive scopes
# ---------------------------------------------------------------------------------------------


@cache
def builtin_policy() -> Policy:
    """The fixture's `servers:`, and one agent `U-CLASS` holding only the built-in scope `U:CLASS`."""
    servers = load_scope_files([FIXTURES / "decisions" / "servers.yaml"], upstreams=UPSTREAMS).servers
    agents = {f"{u}-{c}": {"scopes": [f"{u}:{c}"]} for u in UPSTREAMS for c in CLASSES}
    return compile_policy(
        ScopeFile.model_validate({"agents": agents}).model_copy(update={"servers": servers}), upstreams=UPSTREAMS
    )


@pytest.mark.parametrize(
    ("tool", "klass"),
    [
        pytest.param("files__read_text_file", "read", id="listed-by-name"),
        pytest.param("files__search_files", "read", id="listed-by-glob"),
        pytest.param("files__create_directory", "write", id="listed-write"),
        pytest.param("files__write_file", "destructive", id="listed-destructive"),
        pytest.param("files__move_file", "destructive", id="listed-destructive-2"),
        pytest.param("files__read_file", "destructive", id="unlisted-annotations-not-trusted"),
        pytest.param("time__get_current_time", "destructive", id="no-servers-entry"),
        pytest.param("memory__search_nodes", "read", id="glob"),
        pytest.param("memory__create_entities", "write", id="write-glob"),
        pytest.param("memory__open_nodes", "destructive", id="two-class-conflict-most-dangerous"),
        pytest.param("git__git_status", "read", id="trusted-read-only-hint"),
        pytest.param("git__git_commit", "write", id="trusted-not-destructive-hint"),
        pytest.param("git__git_reset", "destructive", id="trusted-destructive-hint"),
        pytest.param("everything__echo", "read", id="trusted-everything"),
        pytest.param("everything__toggle-simulated-logging", "write", id="trusted-write"),
        pytest.param("lab__get_record", "read", id="listing-beats-annotations"),
        pytest.param("lab__put_record", "write", id="listed-write-glob"),
        pytest.param("lab__get_or_drop", "destructive", id="read-and-destructive-globs"),
        pytest.param("lab__hinted_read", "read", id="read-only-hint-wins"),
        pytest.param("lab__hinted_write", "write", id="hints-say-write"),
        pytest.param("lab__hinted_nothing", "destructive", id="empty-annotations"),
        pytest.param("lab__hinted_strings", "destructive", id="non-boolean-hint"),
        pytest.param("lab__unlisted", "destructive", id="no-annotations"),
    ],
)
def test_each_tool_has_one_class_and_the_built_in_scope_of_that_class_grants_it(tool: str, klass: str) -> None:
    upstream = tool.split("__", 1)[0]
    granted_by = {c for c in CLASSES if tool in listed(PolicyView(builtin_policy(), f"{upstream}-{c}", catalog()))}

    assert granted_by == {klass}


def test_a_tool_two_class_globs_match_is_reported_as_ambiguous() -> None:
    assert policy().classes("memory").classify("open_nodes", None) == Classification("destructive", True, "conflict")
    assert policy().classes("lab").classify("get_or_drop", None) == Classification("destructive", True, "conflict")
    assert policy().classes("lab").classify("get_status", None) == Classification("read", False, "glob")


def test_built_in_scopes_grant_without_constraints() -> None:
    decision = PolicyView(builtin_policy(), "files-read", catalog()).check_tool(
        "files__read_text_file", {"path": "/etc/shadow"}
    )[0]

    assert (decision.outcome, decision.scope, decision.rule) == ("allow", "files:read", "(built-in)")


# ---------------------------------------------------------------------------------------------
# Shadow mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "outcome"),
    [
        pytest.param("lab__tune", {"mode": "debug"}, "allow", id="granted-and-holds"),
        pytest.param("lab__tune", {}, "shadow-deny", id="bad-input-would-be-denied"),
        pytest.param("files__read_text_file", {"path": "/etc/passwd"}, "shadow-deny", id="not-granted-would-hide"),
        pytest.param("files__move_file", {"source": "/a", "destination": "/b"}, "hidden", id="deny-rule-stays"),
        pytest.param("files__no_such_tool", {}, "hidden", id="not-advertised-stays"),
    ],
)
def test_a_shadow_agent_is_forwarded_what_steps_2_to_4_would_refuse_but_deny_rules_stand(
    tool: str, arguments: dict[str, Any], outcome: str
) -> None:
    decision = decide("trialist", tool, arguments)

    assert decision.outcome == outcome
    assert decision.forwarded is (outcome != "hidden")


def test_a_shadow_scope_turns_its_own_denials_into_shadow_denials() -> None:
    decision = decide("scoped-trial", "lab__tune", {"mode": "fast"})

    assert (decision.outcome, decision.argument, decision.constraint) == ("shadow-deny", "mode", "const")
    assert decide("scoped-trial", "lab__tune", {"mode": "slow"}).outcome == "allow"


def test_the_same_call_always_gets_the_same_decision() -> None:
    arguments = {"path": "/srv/docs/../x"}
    first = decide("support-bot", "files__read_text_file", arguments)

    assert PolicyView(policy(), "support-bot", catalog()).check_tool("files__read_text_file", arguments)[0] == first
