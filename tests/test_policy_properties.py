"""Invariants of the policy over generated agents, tools, arguments and policies (Hypothesis).

* What an agent can call (allow or deny, not hidden) is exactly what it is shown.
* Deny by default: unknown agents, and agents without scopes, see nothing and can call nothing.
* Adding a deny rule never widens what is visible or allowed; adding an allow rule never narrows it.
* Equivalent spellings of a URL host decide alike; a respelled path is never allowed.
* Deciding never raises, whatever JSON arrives as arguments.
* The inputSchema fast path accepts exactly what jsonschema accepts.
"""

from __future__ import annotations

import json
import string
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import validators
from support.peers import FIXTURES, UPSTREAMS, all_lists, catalog

from mcp_firewall.catalog import Catalog
from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.config.model import ScopeFile
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.policy.fastschema import compile_fast

OUTCOMES = {"allow", "deny", "hidden", "shadow-deny"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_SETTINGS = settings(SETTINGS, max_examples=50)  # each example compiles two policies and decides ~1,400 calls


@cache
def fixture_scopes() -> ScopeFile:
    return load_scope_files([FIXTURES / "decisions"], upstreams=UPSTREAMS)


@cache
def policy() -> Policy:
    return compile_policy(fixture_scopes(), upstreams=UPSTREAMS)


@cache
def view(agent: str) -> PolicyView:
    return PolicyView(policy(), agent, catalog())


def listed(agent_view: PolicyView) -> set[str]:
    return {tool["name"] for tool in agent_view.tools()}


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)
PLAUSIBLE = st.sampled_from(
    [
        "/srv/docs/a.md",
        "/srv/docs",
        "/srv/docs/../etc/passwd",
        "/srv/docs/drafts/x",
        "/data/r",
        "/etc/passwd",
        "https://docs.example.com/x",
        "http://127.0.0.1:8080/",
        "fast",
        "slow",
        "debug",
        "t0k3n",
        "UTC",
        ["/srv/docs/a", "/etc/b"],
        [{"path": "/data/a", "text": "x"}],
        {"mode": "fast"},
        0,
        5,
        100,
        True,
        False,
    ]
)
AGENTS = st.sampled_from([*fixture_scopes().agents, "no-such-agent", "Support-Bot"])
ANY_TOOL = st.sampled_from(sorted(catalog().tools)) | st.sampled_from(["files__nope", "read_file", "lab__"])


@st.composite
def arguments_for(draw: st.DrawFn, tool: str) -> dict[str, Any]:
    """Arguments mostly named as the tool declares them, with plausible or arbitrary values, and sometimes more."""
    route = catalog().tools.get(tool)
    declared = list((route.definition.get("inputSchema") or {}).get("properties") or {}) if route else []
    names = draw(st.lists(st.sampled_from(declared), unique=True)) if declared else []
    arguments = {name: draw(PLAUSIBLE | JSON) for name in names}
    if draw(st.integers(0, 9)) == 0:
        arguments[draw(st.text(min_size=1, max_size=6))] = draw(JSON)
    return arguments


# ---------------------------------------------------------------------------------------------
# What can be called is what is shown
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(agent=AGENTS, data=st.data())
def test_a_tool_is_listed_exactly_when_calling_it_is_not_hidden(agent: str, data: st.DataObject) -> None:
    tool = data.draw(ANY_TOOL)
    arguments = data.draw(arguments_for(tool))

    decision, route = view(agent).check_tool(tool, arguments)

    assert (decision.outcome != "hidden") is (tool in listed(view(agent)))
    assert (route is None) is (decision.outcome == "hidden")


@SETTINGS
@given(order=st.permutations(range(len(UPSTREAMS))), agent=AGENTS)
def test_what_an_agent_sees_does_not_depend_on_the_order_upstreams_answer(order: list[int], agent: str) -> None:
    shuffled = Catalog.build([all_lists()[i] for i in order])

    assert listed(PolicyView(policy(), agent, shuffled)) == listed(view(agent))


# ---------------------------------------------------------------------------------------------
# Generated policies: deny by default, and monotonicity
# ---------------------------------------------------------------------------------------------

SMALL_CATALOG = Catalog.build([u for u in all_lists() if u.name in ("files", "lab", "fetch")])
SERVERS = {
    "files": {"read": ["read_*", "list_*", "search_files"], "destructive": ["write_file", "move_file"]},
    "lab": {"read": ["get_*"], "write": ["put_*"], "destructive": ["drop_*"], "trust_annotations": True},
}
TOOL_SELECTORS = st.sampled_from(
    [
        "files__read_text_file",
        "files__write_file",
        "lab__tune",
        "lab__get_record",
        "fetch__fetch",
        "lab__*",
        "files__*",
        "*__get_*",
        "*_file",
        "*",
        "files:read",
        "files:destructive",
        "lab:read",
        "lab:write",
        "lab:destructive",
        "fetch:destructive",
    ]
)
CONSTRAINTS = st.sampled_from(
    [
        ("path", {"within": ["/srv/docs"]}),
        ("path", {"within": ["/data"], "required": False}),
        ("paths[*]", {"within": ["/srv/docs"]}),
        ("mode", {"enum": ["fast", "slow"]}),
        ("level", {"max": 5}),
        ("content", {"max_length": 10}),
        ("url", {"url": {"hosts": ["docs.example.com"]}}),
        ("url", {"url": {"schemes": ["http"], "hosts": ["127.0.0.1"], "ports": [8080]}}),
        ("label", {"pattern": "[a-z]+"}),
        ("token", {"absent": True}),
    ]
)
AGENT_NAMES = ["alice", "bob", "carol"]


@st.composite
def allow_rules(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "tools": draw(st.lists(TOOL_SELECTORS, min_size=1, max_size=3, unique=True)),
        "args": dict(draw(st.lists(CONSTRAINTS, max_size=3, unique_by=lambda c: c[0]))),
    }


@st.composite
def deny_rules(draw: st.DrawFn) -> dict[str, Any]:
    agents = draw(st.lists(st.sampled_from([*AGENT_NAMES, "*", "a*", "b*"]), min_size=1, max_size=2, unique=True))
    return {"tools": draw(st.lists(TOOL_SELECTORS, min_size=1, max_size=2, unique=True)), "agents": agents}


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    scopes = {
        f"scope-{i}": {"allow": draw(st.lists(allow_rules(), min_size=1, max_size=3))}
        for i in range(draw(st.integers(1, 4)))
    }
    grantable = [*scopes, "files:read", "lab:write", "lab:destructive"]
    agents = {
        name: {
            "scopes": draw(st.lists(st.sampled_from(grantable), max_size=3, unique=True)),
            "mode": draw(st.sampled_from(["enforce", "enforce", "shadow"])),
        }
        for name in AGENT_NAMES
    }
    return {"servers": SERVERS, "scopes": scopes, "agents": agents, "deny": draw(st.lists(deny_rules(), max_size=2))}


def compiled(document: dict[str, Any]) -> Policy:
    return compile_policy(ScopeFile.model_validate(document), upstreams=("files", "lab", "fetch"))


ARGUMENT_SAMPLES: list[dict[str, Any]] = [
    {},
    {"path": "/srv/docs/a"},
    {"path": "/data/x"},
    {"path": "/etc/passwd"},
    {"path": "/srv/docs/a", "content": "short"},
    {"path": "/srv/docs/a", "content": "far too long for ten"},
    {"paths": ["/srv/docs/a"]},
    {"paths": ["/srv/docs/a", "/etc/x"]},
    {"mode": "fast", "level": 1, "label": "abc"},
    {"mode": "debug", "level": 9},
    {"mode": "slow", "token": "t"},
    {"url": "https://docs.example.com/a"},
    {"url": "http://0x7f.1:8080/"},
    {"url": "https://evil.example.net/"},
]


def behaviour(document: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str, int]]]:
    """(visible (agent, tool) pairs, forwarded (agent, tool, sample) triples) under a policy."""
    under = compiled(document)
    visible: set[tuple[str, str]] = set()
    forwarded: set[tuple[str, str, int]] = set()
    for agent in AGENT_NAMES:
        agent_view = PolicyView(under, agent, SMALL_CATALOG)
        visible |= {(agent, name) for name in listed(agent_view)}
        for tool in SMALL_CATALOG.tools:
            for index, arguments in enumerate(ARGUMENT_SAMPLES):
                if agent_view.check_tool(tool, arguments)[0].forwarded:
                    forwarded.add((agent, tool, index))
    return visible, forwarded


@SLOW_SETTINGS
@given(document=policies(), extra=deny_rules())
def test_adding_a_deny_rule_never_widens_what_is_visible_or_forwarded(
    document: dict[str, Any], extra: dict[str, Any]
) -> None:
    visible, forwarded = behaviour(document)
    tighter_visible, tighter_forwarded = behaviour({**document, "deny": [*document["deny"], extra]})

    assert tighter_visible <= visible
    assert tighter_forwarded <= forwarded


@SLOW_SETTINGS
@given(document=policies(), extra=allow_rules(), data=st.data())
def test_adding_an_allow_rule_never_narrows_what_is_visible_or_forwarded(
    document: dict[str, Any], extra: dict[str, Any], data: st.DataObject
) -> None:
    scope = data.draw(st.sampled_from(sorted(document["scopes"])))
    wider = json.loads(json.dumps(document))
    wider["scopes"][scope]["allow"].append(extra)

    visible, forwarded = behaviour(document)
    wider_visible, wider_forwarded = behaviour(wider)

    assert visible <= wider_visible
    assert forwarded <= wider_forwarded


@SETTINGS
@given(
    document=policies(),
    stranger=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(lambda n: n not in AGENT_NAMES),
    tool=st.sampled_from(sorted(SMALL_CATALOG.tools)),
    arguments=st.sampled_from(ARGUMENT_SAMPLES),
)
def test_unknown_agents_and_agents_without_scopes_see_and_call_nothing(
    document: dict[str, Any], stranger: str, tool: str, arguments: dict[str, Any]
) -> None:
    document["agents"]["bob"] = {"scopes": []}
    under = compiled(document)

    for agent in (stranger, "bob"):
        agent_view = PolicyView(under, agent, SMALL_CATALOG)
        assert agent_view.tools() == []
        assert agent_view.check_tool(tool, arguments)[0].outcome == "hidden"
    assert under.refusal(stranger) is not None


# ---------------------------------------------------------------------------------------------
# Equivalent spellings decide alike
# ---------------------------------------------------------------------------------------------


def _number(draw: st.DrawFn, value: int) -> str:
    style = draw(st.sampled_from(["dec", "hex", "oct"]))
    if style == "hex":
        return draw(st.sampled_from(["0x", "0X"])) + format(value, draw(st.sampled_from(["x", "X"])))
    if style == "oct" and value:
        return "0" + format(value, "o")
    return str(value)


@st.composite
def ipv4_spellings(draw: st.DrawFn, address: int) -> str:
    """A WHATWG spelling of an IPv4 address: 1 to 4 parts in decimal, hex or octal, or IPv4-mapped IPv6."""
    octets = list(address.to_bytes(4, "big"))
    if draw(st.integers(0, 4)) == 0:
        return f"[::ffff:{'.'.join(map(str, octets))}]"
    parts = draw(st.integers(1, 4))
    rest = int.from_bytes(bytes(octets[parts - 1 :]), "big")
    return ".".join(_number(draw, n) for n in [*octets[: parts - 1], rest])


LOOPBACK = 0x7F000001


@SETTINGS
@given(data=st.data(), address=st.sampled_from([LOOPBACK, LOOPBACK + 1, 0x0A000001]) | st.integers(0, 2**32 - 1))
def test_every_spelling_of_an_ip_address_decides_alike(data: st.DataObject, address: int) -> None:
    spellings = [data.draw(ipv4_spellings(address)) for _ in range(3)]
    outcomes = {
        view("local-browser").check_tool("fetch__fetch", {"url": f"http://{host}:8080/x"})[0].outcome
        for host in spellings
    }

    assert outcomes == {"allow" if address == LOOPBACK else "deny"}


@SETTINGS
@given(
    cases=st.lists(st.booleans(), min_size=16, max_size=16),
    dot=st.booleans(),
    host=st.sampled_from(["docs.example.com", "a.example.org", "b.c.example.org", "example.org", "docs.example.co"]),
)
def test_hosts_decide_alike_whatever_their_case_or_trailing_dot(cases: list[bool], dot: bool, host: str) -> None:
    respelled = "".join(c.upper() if upper else c for c, upper in zip(host, cases * 2, strict=False)) + "." * dot

    original = view("browser").check_tool("fetch__fetch", {"url": f"https://{host}/x"})[0].outcome
    assert view("browser").check_tool("fetch__fetch", {"url": f"https://{respelled}/x"})[0].outcome == original


SEGMENT = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=8)


@st.composite
def respelled_paths(draw: st.DrawFn) -> tuple[str, str]:
    """A normalised path under /srv/docs, and another spelling of the same file (a `.`, an empty segment,
    a detour through `..`, or a trailing slash)."""
    segments = ["srv", "docs", *draw(st.lists(SEGMENT, min_size=1, max_size=4))]
    at = draw(st.integers(1, len(segments)))
    trick = draw(st.sampled_from([["."], [""], [".", "."], [draw(SEGMENT), ".."]]))
    respelled = "/" + "/".join([*segments[:at], *trick, *segments[at:]])
    if draw(st.integers(0, 4)) == 0:
        respelled = "/" + "/".join(segments) + "/"
    return "/" + "/".join(segments), respelled


@SETTINGS
@given(paths=respelled_paths())
def test_a_path_is_allowed_only_in_its_normal_spelling(paths: tuple[str, str]) -> None:
    normal, respelled = paths

    assert view("support-bot").check_tool("files__read_text_file", {"path": normal})[0].outcome == "allow"
    denied = view("support-bot").check_tool("files__read_text_file", {"path": respelled})[0]
    assert (denied.outcome, denied.argument, denied.constraint) == ("deny", "path", "within")


# ---------------------------------------------------------------------------------------------
# Deciding never raises
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(agent=AGENTS, data=st.data(), arguments=st.dictionaries(st.text(max_size=10), JSON, max_size=5) | JSON)
def test_deciding_never_raises_on_arbitrary_json(agent: str, data: st.DataObject, arguments: Any) -> None:
    tool = data.draw(ANY_TOOL)
    prompt = data.draw(st.sampled_from([*catalog().prompts, "nope"]))
    uri = data.draw(st.text(max_size=40) | st.sampled_from(["demo://resource/static/document/features.md"]))

    assert view(agent).check_tool(tool, arguments)[0].outcome in OUTCOMES
    assert view(agent).check_prompt(prompt, arguments)[0].outcome in OUTCOMES
    assert view(agent).check_resource(uri)[0].outcome in OUTCOMES


# ---------------------------------------------------------------------------------------------
# The inputSchema fast path decides exactly as jsonschema
# ---------------------------------------------------------------------------------------------

KEYS = ["a", "b", "path", "x-1"]
TYPE_NAMES = ["string", "number", "integer", "boolean", "null", "object", "array"]
NUMBERS = st.integers(-3, 3) | st.sampled_from([0.5, -1.5, 2.0, 1e20])
SMALL_JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text("abxy019", max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
    max_leaves=6,
)
LEAF_SCHEMAS = st.booleans() | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPE_NAMES)
        | st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=3, unique=True),
        "minimum": NUMBERS,
        "maximum": NUMBERS,
        "exclusiveMinimum": NUMBERS,
        "exclusiveMaximum": NUMBERS,
        "minLength": st.integers(0, 4),
        "maxLength": st.integers(0, 4),
        "minItems": st.integers(0, 3),
        "maxItems": st.integers(0, 3),
        "minProperties": st.integers(0, 3),
        "maxProperties": st.integers(0, 3),
        "pattern": st.sampled_from(["^a", "b$", "[0-9]+", "^(x|y)*$", "", "é"]),
        "enum": st.lists(SMALL_JSON, min_size=1, max_size=4),
        "const": SMALL_JSON,
        "description": st.text(max_size=4),
        "format": st.sampled_from(["uri", "date-time", "email"]),
    },
)
SCHEMAS = st.recursive(
    LEAF_SCHEMAS,
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["object", "array"]),
            "properties": st.dictionaries(st.sampled_from(KEYS), children, max_size=3),
            "required": st.lists(st.sampled_from(KEYS), max_size=3, unique=True),
            "additionalProperties": children,
            "items": children,
            "anyOf": st.lists(children, min_size=1, max_size=3),
            "allOf": st.lists(children, min_size=1, max_size=2),
            "oneOf": st.lists(children, min_size=1, max_size=3),
            "not": children,
        },
    ),
    max_leaves=8,
)
DIALECTS = st.sampled_from(
    [None, "http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"]
)


@settings(SETTINGS, max_examples=400)
@given(schema=SCHEMAS, dialect=DIALECTS, instances=st.lists(SMALL_JSON, min_size=1, max_size=8))
def test_the_input_schema_fast_path_decides_exactly_as_jsonschema(
    schema: Any, dialect: str | None, instances: list[Any]
) -> None:
    if dialect is not None and isinstance(schema, dict):
        schema = {**schema, "$schema": dialect}
    reference_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    reference_class.check_schema(schema)
    reference = reference_class(schema)
    fast = compile_fast(schema)

    assert fast is not None
    for instance in instances:
        assert fast(instance) == reference.is_valid(instance), (schema, instance)


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"properties": {"a": {"$ref": "#"}}},
        {"patternProperties": {"^x": {}}},
        {"items": [{"type": "string"}]},
        {"prefixItems": [{"type": "string"}]},
        {"multipleOf": 0.1},
        {"uniqueItems": True},
        {"exclusiveMaximum": True, "maximum": 3},
        {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"},
        {"type": "strin"},
        {"x-vendor": 1},
    ],
)
def test_a_schema_outside_the_fast_vocabulary_is_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_fast(schema) is None


def test_every_real_servers_tool_schema_has_a_fast_path() -> None:
    slow = [name for name, route in catalog().tools.items() if compile_fast(route.definition["inputSchema"]) is None]

    assert slow == ["lab__patterned", "lab__broken"]
