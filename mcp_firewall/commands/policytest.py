"""`mcp-firewall test [PATH ...]`: policy tests, written by reviewers beside the scopes they test.

A test file (`scopes/tests/*.yaml`) is a list of cases, or a mapping with `tests:` (the list) and
`config:` (the firewall file the cases are for, relative to the test file; default `--config`)::

    config: ../../examples/firewall.yaml
    tests:
      - name: the reader cannot climb out of the notes folder
        agent: pydantic-ai-agent
        tool: notes__read_note            # or `prompt: NAME`, or `resource: URI`
        args: {name: ../etc/passwd}
        expect: deny                      # allow | deny | hidden | shadow-deny
        reason: does not match            # optional: a part of the decision's reason
        scope: notes-reader               # optional: the scope whose rule decided

Decisions are made exactly as `run` makes them, with tool definitions from `tools.lock` (or the
upstreams). A lock records tools only: a `prompt` or `resource` that no upstream is known to offer is
decided as if one did (for a prompt, taking the arguments the case gives), so that tests can pin the
policy for them offline too. Output is one line per failure (`-v`: per case) and `N passed, M failed`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from mcp_firewall.catalog import Catalog, Route
from mcp_firewall.commands.common import UsageError, add_config_argument, load_config, load_policy_of
from mcp_firewall.commands.explain import explain_tool
from mcp_firewall.commands.offline import report_unknown, tool_definitions
from mcp_firewall.commands.report_common import Paint, compact_json
from mcp_firewall.config._base import ConfigModel
from mcp_firewall.config._messages import validation_issues
from mcp_firewall.config._yaml import SourceMap, parse_yaml
from mcp_firewall.config.loader import display_path
from mcp_firewall.errors import ConfigError, ConfigIssue
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import Policy
from mcp_firewall.policy.decision import Decision

__all__ = ["CaseResult", "PolicyCase", "PolicyTestFile", "load_test_file", "passes", "register", "run_case"]

_SUFFIXES = (".yaml", ".yml")


class PolicyCase(ConfigModel):
    """One request and the decision the reviewer expects for it."""

    name: str | None = None
    """What the case shows, in words (default: the agent and the request)."""
    agent: str
    """The agent making the request."""
    tool: str | None = None
    """A tool as the agent sees it (`upstream__tool`)."""
    prompt: str | None = None
    """A prompt as the agent sees it."""
    resource: str | None = None
    """A resource URI."""
    args: dict[str, Any] = Field(default_factory=dict)
    """The call's arguments (tools and prompts)."""
    expect: Literal["allow", "deny", "hidden", "shadow-deny"]
    """The expected outcome."""
    reason: str | None = None
    """A part of the decision's reason that must appear in it (case-insensitive)."""
    scope: str | None = None
    """The scope whose rule must have decided."""

    @model_validator(mode="after")
    def _one_target(self) -> PolicyCase:
        given = [key for key in ("tool", "prompt", "resource") if getattr(self, key) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none of them"
            raise ValueError(f"a case names exactly one of tool, prompt or resource; found {found}")
        if self.resource is not None and self.args:
            raise ValueError("`args` applies to tools and prompts, not to resources")
        return self

    @property
    def request(self) -> str:
        """`tool notes__read_note {"name": "a"}`, as printed in failures."""
        kind, target = next((k, v) for k in ("tool", "prompt", "resource") if (v := getattr(self, k)) is not None)
        return f"{kind} {target}" + (f" {compact_json(self.args)}" if self.args else "")

    @property
    def title(self) -> str:
        return self.name or f"{self.agent}: {self.request}"


class PolicyTestFile(ConfigModel):
    """A policy test file."""

    config: str | None = None
    """The firewall file these cases are for, relative to this file (default: `--config`)."""
    tests: list[PolicyCase]
    """The cases, run in order."""


@dataclass(frozen=True)
class LoadedTests:
    path: Path
    shown: str
    model: PolicyTestFile
    source: SourceMap


def load_test_file(path: Path) -> LoadedTests:
    """Read and validate one test file; raise `ConfigError` naming `FILE:LINE:COL` of every problem."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(shown, 1, 1, "read_error", f"cannot read the test file: {exc}")]) from None
    parsed = parse_yaml(text, shown)
    if parsed.issues:
        raise ConfigError(parsed.issues)
    data, source = parsed.data, parsed.source
    if isinstance(data, list):  # the short form: the list of cases alone
        data = {"tests": data}
        source = SourceMap(shown, _shifted(source.keys), {(): (1, 1), **_shifted(source.values)})
    try:
        model = PolicyTestFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, PolicyTestFile, data, source, {})) from None
    return LoadedTests(path, shown, model, source)


def _shifted(positions: Mapping[tuple[Any, ...], tuple[int, int]]) -> dict[tuple[Any, ...], tuple[int, int]]:
    return {("tests", *path): at for path, at in positions.items()}


# -- running -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    case: PolicyCase
    location: str  # FILE:LINE of the case
    passed: bool
    got: str  # what happened, as a failure shows it


def run_case(policy: Policy, catalog: Catalog, case: PolicyCase) -> Decision:
    """The decision for one case, as `run` would make it (see the module docstring for prompts and resources)."""
    refusal = policy.refusal(case.agent)
    if refusal is not None:
        return Decision("hidden", reason=refusal)
    if case.prompt is not None:
        return PolicyView(policy, case.agent, _with_target(catalog, case)).check_prompt(case.prompt, case.args)[0]
    if case.resource is not None:
        return PolicyView(policy, case.agent, _with_target(catalog, case)).check_resource(case.resource)[0]
    assert case.tool is not None
    explanation = explain_tool(policy, catalog, case.agent, case.tool, case.args)
    decision = explanation.decision
    if decision.outcome != "hidden":
        return decision
    deny = next((trace.deny for trace in explanation.denies if trace.selector is not None), None)
    if deny is not None:
        return replace(decision, reason=deny.reason, rule=deny.location)
    if explanation.route is None:
        return replace(decision, reason="no upstream advertises this tool")
    return replace(decision, reason="no allow rule of the agent's scopes selects it")


def passes(decision: Decision, case: PolicyCase) -> bool:
    """Whether the decision is what the case expects: the outcome, and the reason and scope where given."""
    return (
        decision.outcome == case.expect
        and (case.reason is None or case.reason.lower() in decision.reason.lower())
        and (case.scope is None or decision.scope == case.scope)
    )


def _with_target(catalog: Catalog, case: PolicyCase) -> Catalog:
    """The catalog, plus the case's prompt or resource if no upstream is known to offer it."""
    if case.prompt is not None and case.prompt not in catalog.prompts:
        upstream, _, name = case.prompt.partition("__")
        definition = {"name": name or upstream, "arguments": [{"name": key} for key in case.args]}
        route = Route(upstream, name or upstream, case.prompt, definition)
        return replace(catalog, prompts={**catalog.prompts, case.prompt: route})
    if case.resource is not None and catalog.route_uri(case.resource) is None:
        route = Route("(unknown)", case.resource, case.resource, {"uri": case.resource})
        return replace(catalog, resources={**catalog.resources, case.resource: route})
    return catalog


# -- command -------------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add `test` to the `mcp-firewall` subcommands."""
    parser = commands.add_parser(
        "test",
        help="run policy test files",
        description="Run policy test files: each case names an agent, a tool (or prompt, or resource), arguments "
        "and the expected decision. Prints each failure and `N passed, M failed`. Exit 0 all pass, 1 failures.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="test files, or folders of them (*.yaml, *.yml); default: the tests/ folder beside the firewall "
        "file's scope paths, else scopes/tests",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case, not only failures")
    add_config_argument(parser)
    parser.set_defaults(command=_run_tests)


def _run_tests(args: argparse.Namespace) -> int:
    files = _test_files(args.paths, args.config)
    runner = _Runner(args.config, Paint(), verbose=args.verbose)
    for path in files:
        runner.run_file(path)
    return runner.summary()


def _test_files(paths: Sequence[str], config_path: str) -> list[Path]:
    if paths:
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise UsageError(f"no policy tests at {', '.join(map(repr, missing))}")
        places = [Path(p) for p in paths]
    else:
        places = _default_places(config_path)
    files = [file for place in places for file in _files_in(place)]
    if not files:
        shown = ", ".join(display_path(p) for p in places) or "scopes/tests"
        raise UsageError(f"no policy test files (*.yaml, *.yml) in {shown}")
    return list(dict.fromkeys(files))


def _default_places(config_path: str) -> list[Path]:
    """`tests/` beside each scope path of the firewall file (a folder's own, a file's sibling), else scopes/tests."""
    if os.path.exists(config_path):
        scopes = load_config(config_path).firewall.scopes
        places = [Path(s) / "tests" if Path(s).is_dir() else Path(s).parent / "tests" for s in scopes]
        found = [place for place in dict.fromkeys(places) if place.is_dir()]
        if found:
            return found
    return [Path("scopes", "tests")]


def _files_in(place: Path) -> Iterator[Path]:
    if place.is_dir():
        yield from sorted(p for p in place.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    elif place.exists():
        yield place


@dataclass(frozen=True)
class _Target:
    """What one firewall file's cases are decided against."""

    policy: Policy
    catalog: Catalog
    unknown: Mapping[str, str]


class _Runner:
    def __init__(self, default_config: str, paint: Paint, *, verbose: bool) -> None:
        self.default_config = default_config
        self.paint = paint
        self.verbose = verbose
        self.targets: dict[Path, _Target] = {}
        self.passed = self.failed = self.broken = 0

    def run_file(self, path: Path) -> None:
        try:
            tests = load_test_file(path)
            target = self._target(tests)
        except (ConfigError, UsageError) as exc:
            self.broken += 1
            print(f"{self.paint('ERROR', 'red')} {display_path(path)}: its cases could not be run")
            problems = [str(issue) for issue in exc.issues] if isinstance(exc, ConfigError) else [str(exc)]
            print("\n".join(f"      {problem}" for problem in problems))
            return
        for index, case in enumerate(tests.model.tests):
            location = tests.source.locate(("tests", index)).short
            self._report(self._run(target, case, location))

    def _target(self, tests: LoadedTests) -> _Target:
        written = tests.model.config
        config_path = (tests.path.parent / written) if written is not None else Path(self.default_config)
        if not config_path.exists():
            where = f"{written!r} (the test file's `config:`)" if written else f"{str(config_path)!r}"
            raise UsageError(f"no firewall file at {where}; pass --config FILE or set `config:` in the test file")
        key = config_path.resolve()
        if key not in self.targets:
            config = load_config(str(config_path))
            definitions = tool_definitions(config)
            report_unknown(definitions)
            self.targets[key] = _Target(load_policy_of(config), definitions.catalog(), definitions.unknown)
        return self.targets[key]

    @staticmethod
    def _run(target: _Target, case: PolicyCase, location: str) -> CaseResult:
        upstream = next((name for name in target.unknown if (case.tool or "").startswith(f"{name}__")), None)
        if upstream is not None:  # never pass by accident: "hidden" is what an unknown tool would look like
            got = f"undecided: the tools of upstream {upstream!r} are unknown: {target.unknown[upstream]}"
            return CaseResult(case, location, False, got)
        decision = run_case(target.policy, target.catalog, case)
        return CaseResult(case, location, passes(decision, case), _describe(decision))

    def _report(self, result: CaseResult) -> None:
        if result.passed:
            self.passed += 1
            if self.verbose:
                print(f"{self.paint('ok', 'green')}    {result.location}: {result.case.title}")
            return
        self.failed += 1
        case = result.case
        print(f"{self.paint('FAIL', 'red')}  {result.location}: {case.title}")
        expected = case.expect + (f", reason containing {case.reason!r}" if case.reason else "")
        expected += f", decided by scope {case.scope}" if case.scope else ""
        if case.name:
            print(f"      request:  {case.agent} → {case.request}")
        print(f"      expected: {expected}")
        print(f"      got:      {result.got}")

    def summary(self) -> int:
        counts = f"{self.passed} passed, {self.failed} failed"
        if self.broken:
            counts += f", {self.broken} test file{'s' if self.broken != 1 else ''} could not be run"
        if self.failed or self.broken or self.verbose:
            print()
        print(counts)
        return 1 if self.failed or self.broken else 0


def _describe(decision: Decision) -> str:
    text = decision.outcome + (f": {decision.reason}" if decision.reason else "")
    where = [f"scope {decision.scope}"] if decision.scope else []
    where += [f"rule {decision.rule}"] if decision.rule else []
    return text + (f" ({', '.join(where)})" if where else "")
