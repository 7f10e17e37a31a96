"""What one agent sees (SPEC §4): tool lists and the inputSchema shown, prompts, resources and resource
templates, and what an upstream may ask of the agent's client.

Same fixtures as test_policy_decisions.py: real servers' definitions (tests/fixtures/policy/peers/),
`lab` tools (tests/fixtures/policy/lab.json) and the scope files in tests/fixtures/policy/decisions/.
"""

from __future__ import annotations

import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support.peers import FIXTURES, UPSTREAMS, catalog

from mcp_firewall.catalog import Catalog, UpstreamLists
from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import Policy, compile_policy

STATIC_DOCS = [
    f"demo://resource/static/document/{name}.md"
    for name in ("architecture", "extension", "features", "how-it-works", "instructions", "startup", "structure")
]


@cache
def policy() -> Policy:
    return compile_policy(load_scope_files([FIXTURES / "decisions"], upstreams=UPSTREAMS), upstreams=UPSTREAMS)


@cache
def view(agent: str) -> PolicyView:
    return PolicyView(policy(), agent, catalog())


def tool_schema(agent: str, tool: str) -> dict[str, Any]:
    (shown,) = (t for t in view(agent).tools() if t["name"] == tool)
    schema: dict[str, Any] = shown["inputSchema"]
    return schema


def original_schema(tool: str) -> dict[str, Any]:
    return dict(catalog().tools[tool].definition["inputSchema"])


def policy_with(tmp_path: Path, scope_yaml: str) -> Policy:
    extra = tmp_path / "extra.yaml"
    extra.write_text(textwrap.dedent(scope_yaml), encoding="utf-8")
    scopes = load_scope_files([FIXTURES / "decisions" / "servers.yaml", extra], upstreams=UPSTREAMS)
    return compile_policy(scopes, upstreams=UPSTREAMS)


# ---------------------------------------------------------------------------------------------
# tools/list
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "tools"),
    [
        (
            "support-bot",
            [
                "files__read_text_file",
                "files__read_multiple_files",
                "files__list_directory",
                "files__search_files",
                "files__get_file_info",
                "files__list_allowed_directories",
                "time__get_current_time",
            ],
        ),
        ("memory-user", ["memory__read_graph", "memory__search_nodes"]),
        (
            "memory-admin",
            ["memory__create_entities", "memory__create_relations", "memory__add_observations"]
            + ["memory__read_graph", "memory__search_nodes"],
        ),
        ("lab-reader", ["lab__get_record", "lab__get_status", "lab__hinted_read"]),
        (
            "git-reader",
            [
                f"git__git_{name}"
                for name in ("status", "diff_unstaged", "diff_staged", "diff", "log", "show", "branch")
            ],
        ),
        ("nobody", []),
        ("no-such-agent", []),
    ],
)
def test_an_agent_sees_exactly_the_tools_it_may_call_in_upstream_order(agent: str, tools: list[str]) -> None:
    assert [tool["name"] for tool in view(agent).tools()] == tools


def test_a_listed_tool_is_the_upstreams_definition_under_its_exposed_name() -> None:
    (shown,) = (tool for tool in view("lab-admin").tools() if tool["name"] == "lab__get_record")

    assert shown == {**catalog().tools["lab__get_record"].definition, "name": "lab__get_record"}


def test_the_shown_input_schema_is_narrowed_when_one_rule_grants_the_tool() -> None:
    schema = tool_schema("tuner", "lab__tune")

    assert schema["properties"] == {
        "mode": {"type": "string", "enum": ["fast", "slow"]},  # [fast, slow, debug] ∩ [fast, slow]
        "level": {"type": "integer", "maximum": 10},
        "label": {"type": "string", "pattern": "^(?:[a-z]+)$", "maxLength": 8},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "token": {"type": "string", "const": "t0k3n"},
    }
    assert schema["required"] == ["mode"]


def test_a_narrowed_schema_keeps_the_tools_own_tighter_bounds_and_everything_else() -> None:
    schema = tool_schema("editor", "files__write_file")

    assert schema == {
        **original_schema("files__write_file"),
        "properties": {"path": {"type": "string"}, "content": {"type": "string", "maxLength": 1000}},
    }


@pytest.mark.parametrize(
    ("agent", "tool"),
    [
        pytest.param("two-ways", "lab__tune", id="two-rules-grant-it"),
        pytest.param("lab-admin", "lab__tune", id="an-unconstrained-rule"),
        pytest.param("support-bot", "files__read_text_file", id="within-has-no-schema-form"),
        pytest.param("nester", "lab__nested", id="nested-paths-are-not-narrowed"),
    ],
)
def test_the_shown_input_schema_is_the_original_where_nothing_narrows_it(agent: str, tool: str) -> None:
    assert tool_schema(agent, tool) == original_schema(tool)


def test_narrowing_what_an_agent_sees_never_changes_the_catalog() -> None:
    tool_schema("tuner", "lab__tune")

    assert original_schema("lab__tune")["properties"]["mode"]["enum"] == ["fast", "slow", "debug"]


# ---------------------------------------------------------------------------------------------
# prompts/list and prompts/get
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "prompts"),
    [
        ("support-bot", ["everything__simple-prompt"]),
        (
            "prompter",
            ["fetch__fetch", "everything__simple-prompt", "everything__args-prompt"]
            + ["everything__completable-prompt", "everything__resource-prompt"],
        ),
        ("contractor", ["everything__simple-prompt", "everything__completable-prompt", "everything__resource-prompt"]),
        ("lab-admin", []),
        ("no-such-agent", []),
    ],
)
def test_an_agent_sees_the_prompts_its_rules_select_minus_denied_ones(agent: str, prompts: list[str]) -> None:
    assert [prompt["name"] for prompt in view(agent).prompts()] == prompts


@pytest.mark.parametrize(
    ("agent", "prompt", "arguments", "outcome", "argument", "constraint"),
    [
        ("prompter", "everything__args-prompt", {"city": "Paris", "state": "IDF"}, "allow", None, None),
        ("prompter", "everything__args-prompt", {"city": "Rome"}, "deny", "city", "enum"),
        ("prompter", "everything__args-prompt", {"state": "IDF"}, "deny", "city", "required"),
        ("prompter", "everything__args-prompt", {"city": "Paris", "zip": "75001"}, "deny", "zip", "inputSchema"),
        ("prompter", "everything__simple-prompt", {}, "allow", None, None),  # declares no `city`
        ("prompter", "everything__completable-prompt", {"department": "x", "name": "y"}, "allow", None, None),
        ("prompter", "fetch__fetch", {"url": "https://docs.example.com/x"}, "allow", None, None),
        ("prompter", "fetch__fetch", {"url": "https://evil.example.net/"}, "deny", "url", "url"),
        ("prompter", "everything__no-such-prompt", {}, "hidden", None, None),
        ("contractor", "everything__args-prompt", {"city": "Paris"}, "hidden", None, None),  # deny rule
        ("support-bot", "everything__args-prompt", {"city": "Paris"}, "hidden", None, None),  # not selected
        ("no-such-agent", "everything__simple-prompt", {}, "hidden", None, None),
    ],
)
def test_prompts_get_is_decided_like_a_tool_call(
    agent: str,
    prompt: str,
    arguments: dict[str, Any],
    outcome: str,
    argument: str | None,
    constraint: str | None,
) -> None:
    decision, route = view(agent).check_prompt(prompt, arguments)

    assert (decision.outcome, decision.argument, decision.constraint) == (outcome, argument, constraint)
    assert (route is None) is (outcome == "hidden")


# ---------------------------------------------------------------------------------------------
# resources/list, resources/templates/list and resources/read
# ---------------------------------------------------------------------------------------------


def test_an_agent_sees_the_resources_its_uri_globs_grant_minus_denied_ones() -> None:
    uris = [resource["uri"] for resource in view("support-bot").resources()]

    assert uris == [uri for uri in STATIC_DOCS if not uri.endswith("/instructions.md")]
    assert [r["uri"] for r in view("memory-user").resources()] == ["memory://knowledge-graph"]
    assert view("lab-admin").resources() == []


@pytest.mark.parametrize(
    ("agent", "uri", "outcome", "upstream"),
    [
        ("support-bot", "demo://resource/static/document/features.md", "allow", "everything"),
        ("support-bot", "demo://resource/static/document/instructions.md", "hidden", None),  # deny rule
        ("support-bot", "demo://resource/dynamic/text/1", "hidden", None),  # routable, not granted
        ("support-bot", "demo://resource/static/document/nope.md", "hidden", None),  # granted, not advertised
        ("memory-user", "memory://knowledge-graph", "allow", "memory"),
        ("templated", "demo://resource/dynamic/text/42", "allow", "everything"),  # through the template
        ("templated", "demo://resource/dynamic/blob/42", "hidden", None),
        ("templated", "demo://resource/dynamic/text/a/../../blob/1", "hidden", None),
        ("no-such-agent", "memory://knowledge-graph", "hidden", None),
    ],
)
def test_a_resource_read_is_checked_against_the_concrete_uri(
    agent: str, uri: str, outcome: str, upstream: str | None
) -> None:
    decision, routed_to = view(agent).check_resource(uri)

    assert (decision.outcome, routed_to) == (outcome, upstream)


@pytest.mark.parametrize(
    ("agent", "templates"),
    [
        ("templated", ["demo://resource/dynamic/text/{resourceId}"]),
        ("support-bot", []),  # its glob covers static documents only
        ("lab-admin", []),
        ("no-such-agent", []),
    ],
)
def test_a_resource_template_is_listed_when_part_of_what_it_expands_to_is_granted(
    agent: str, templates: list[str]
) -> None:
    assert [template["uriTemplate"] for template in view(agent).templates()] == templates


FILES_TREE = Catalog.build(
    [
        UpstreamLists(
            "files",
            True,
            resources=[{"uri": "file:///srv/docs/readme.md", "name": "readme"}],
            templates=[{"uriTemplate": "file:///srv/{+path}", "name": "anything under /srv"}],
        )
    ]
)


@pytest.mark.parametrize(
    ("glob", "uri", "outcome"),
    [
        ("file:///srv/docs/*", "file:///srv/docs/readme.md", "allow"),
        ("file:///srv/docs/*", "file:///srv/docs/guide/intro.md", "hidden"),  # `*` stays in one segment
        ("file:///srv/docs/**", "file:///srv/docs/guide/intro.md", "allow"),  # `**` crosses segments
        ("file:///srv/docs/**", "file:///srv/docs/../etc/passwd", "hidden"),
        ("file:///srv/docs/**", "file:///srv/docs/%2e%2e/etc/passwd", "hidden"),
        ("file:///srv/docs/**", "file:///srv/docs/a%2F..%2F..%2Fetc", "hidden"),
        ("file:///srv/docs/**", "file:///srv/docs2/a.md", "hidden"),
        ("file:///srv/docs/*.md", "file:///srv/docs/readme.md", "allow"),
        ("file:///srv/docs/*.md", "file:///srv/docs/readme.txt", "hidden"),
        ("file:///srv/*/readme.md", "file:///srv/docs/readme.md", "allow"),
        ("file:///srv/docs/readme.md", "file:///srv/docs/readme.md", "allow"),  # literal: exact
        ("file:///srv/docs/readme.md", "file:///srv/docs/README.md", "hidden"),  # case-sensitive
    ],
)
def test_uri_globs_match_one_segment_with_star_and_any_depth_with_two(
    tmp_path: Path, glob: str, uri: str, outcome: str
) -> None:
    granted = policy_with(
        tmp_path, f'scopes: {{s: {{allow: [{{resources: ["{glob}"]}}]}}}}\nagents: {{a: {{scopes: [s]}}}}'
    )

    assert granted.view("a", FILES_TREE).check_resource(uri)[0].outcome == outcome


# ---------------------------------------------------------------------------------------------
# What an upstream may ask of the agent's client (the `servers:` section)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "method", "outcome"),
    [
        ("everything", "sampling/createMessage", "allow"),
        ("everything", "elicitation/create", "allow"),
        ("everything", "roots/list", "deny"),  # roots default to deny
        ("git", "roots/list", "allow"),  # roots: allow relays the client's
        ("git", "sampling/createMessage", "deny"),
        ("git", "elicitation/create", "deny"),
        ("files", "roots/list", "deny"),  # a fixed list: the firewall answers, the client is not asked
        ("time", "sampling/createMessage", "deny"),  # no servers entry: everything denied
        ("time", "roots/list", "deny"),
        ("everything", "tools/call", "deny"),  # anything else is refused
        ("everything", "sampling/createMessage/", "deny"),
    ],
)
def test_upstream_requests_to_the_client_follow_the_servers_section(upstream: str, method: str, outcome: str) -> None:
    assert policy().check_upstream_request("support-bot", upstream, method).outcome == outcome


def test_an_upstream_may_ask_nothing_of_a_refused_agent() -> None:
    assert policy().check_upstream_request("no-such-agent", "everything", "sampling/createMessage").outcome == "deny"


def test_a_fixed_roots_list_is_answered_by_the_firewall() -> None:
    assert policy().fixed_roots("files") == [{"uri": "file:///srv/docs"}, {"uri": "file:///srv/repos"}]
    assert policy().fixed_roots("git") is None
    assert policy().fixed_roots("time") is None


CLIENT = {"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": True}, "experimental": {"x": {}}}


@pytest.mark.parametrize(
    ("upstream", "client", "offered"),
    [
        ("everything", CLIENT, {"sampling": {}, "elicitation": {"form": {}}}),
        ("everything", {"roots": {}}, {}),  # allowed but the client cannot: not offered
        ("git", CLIENT, {"roots": {"listChanged": True}}),
        ("git", {}, {}),
        ("files", {}, {"roots": {"listChanged": False}}),  # the firewall answers a fixed list itself
        ("files", CLIENT, {"roots": {"listChanged": False}}),
        ("time", CLIENT, {}),
        ("no-such-upstream", CLIENT, {}),
    ],
)
def test_an_upstream_is_offered_the_clients_capabilities_that_policy_allows(
    upstream: str, client: dict[str, Any], offered: dict[str, Any]
) -> None:
    assert policy().capabilities_for(upstream, client) == offered
