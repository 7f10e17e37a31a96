"""`mcp-firewall diff OLD NEW`: what each agent gains and loses between two versions of the scope files.

Both versions are compiled against the same firewall file (its upstreams and `environment`) and the
same tool definitions (`tools.lock`, or the upstreams), so that every difference comes from the scope
files. Per agent it reports tools gained and lost (and why, when a class or a deny rule is the cause),
class changes, argument constraints loosened, tightened or changed, prompts and resource globs gained
and lost, and changes to `mode`, `expires` and `environments`; per upstream, what it may ask of clients.

Constraints are compared per tool as the set of its grants' constraint sets ("alternatives": a call is
allowed when all constraints of any one grant hold). An added alternative can only loosen, a removed one
only tighten; a changed one is compared key by key: a `within` whose dirs cover the old ones, a larger
`max`/`max_length`, a smaller `min`, an `enum` or a URL host/scheme/port list that is a superset, a
removed key or constraint are looser; the converse is tighter; anything else (a new `pattern`) is
reported as changed. Exit 0 when nothing changed, 1 when something did.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp_firewall.catalog import Catalog
from mcp_firewall.commands.common import UsageError, add_config_argument, load_config
from mcp_firewall.commands.explain import hiding_deny, tool_class
from mcp_firewall.commands.offline import report_unknown, tool_definitions
from mcp_firewall.commands.report_common import columns
from mcp_firewall.config.loader import LoadedConfig, load_scope_files
from mcp_firewall.errors import ConfigError
from mcp_firewall.policy.agentview import PolicyView
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.policy.constraints import CompiledConstraint

__all__ = ["AgentDiff", "Change", "compare_constraints", "diff_policies", "register", "render_markdown", "render_text"]

Kind = Literal["gained", "lost", "loosened", "tightened", "changed", "class", "agent", "server"]
_ORDER: tuple[Kind, ...] = ("agent", "gained", "lost", "loosened", "tightened", "changed", "class", "server")
_GLOB = "resources (URI glob)"
Status = Literal["added", "removed", "changed"]
Alternative = tuple[tuple[str, str], ...]  # one grant's constraints: sorted (argument path, spec as JSON)


@dataclass(frozen=True, order=True)
class Change:
    """One difference: `kind`, what it is about (a tool, prompt, resource glob or setting), and the facts."""

    kind: Kind
    subject: str
    detail: str = ""
    item: Literal["tool", "prompt", "resources"] = "tool"  # what `subject` names (tools are listed first)


@dataclass(frozen=True)
class AgentDiff:
    agent: str
    status: Status
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class _Tool:
    klass: str
    alternatives: Mapping[Alternative, frozenset[str]]  # each grant's constraints → the scopes that grant it so


@dataclass(frozen=True)
class _Access:
    """What one agent may do under one policy."""

    tools: Mapping[str, _Tool] = field(default_factory=dict)
    prompts: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    settings: Mapping[str, str] = field(default_factory=dict)


def diff_policies(old: Policy, new: Policy, catalog: Catalog) -> tuple[list[AgentDiff], list[Change]]:
    """Per agent (sorted), what changed; and what changed in what upstreams may ask of clients."""
    agents: list[AgentDiff] = []
    for agent in sorted(set(old.agents) | set(new.agents)):
        before, after = _access(old, catalog, agent), _access(new, catalog, agent)
        changes = _agent_changes(old, new, catalog, agent, before, after)
        if changes:
            status: Status = "added" if agent not in old.agents else "removed" if agent not in new.agents else "changed"
            agents.append(AgentDiff(agent, status, tuple(sorted(changes, key=_sort_key))))
    return agents, _server_changes(old, new)


def _sort_key(change: Change) -> tuple[int, int, str, str]:
    return _ORDER.index(change.kind), ("tool", "prompt", "resources").index(change.item), change.subject, change.detail


def _access(policy: Policy, catalog: Catalog, agent: str) -> _Access:
    compiled = policy.agents.get(agent)
    if compiled is None:
        return _Access()
    settings = {"mode": "shadow" if compiled.shadow else "enforce"}
    source = policy.source.agents.get(agent) if policy.source is not None else None
    if source is not None:
        settings["expires"] = str(source.expires) if source.expires is not None else "never"
        settings["environments"] = ", ".join(source.environments) if source.environments is not None else "any"
    view = PolicyView(policy, agent, catalog)
    tools = {}
    for name, grant in view.tools_granted.items():
        alternatives: dict[Alternative, frozenset[str]] = {}
        for rule, constraints in grant.rules:
            key = _alternative(constraints)
            alternatives[key] = alternatives.get(key, frozenset()) | {rule.scope}
        if alternatives:
            tools[name] = _Tool(grant.klass or "destructive", alternatives)
    live = policy.refusal(agent) is None
    globs = (
        {g.pattern for rule in compiled.rules if rule.kind == "resources" for g in rule.uri_globs} if live else set()
    )
    return _Access(tools, frozenset(view.prompts_granted), frozenset(globs), settings)


def _alternative(constraints: Sequence[CompiledConstraint]) -> Alternative:
    specs = ((c.path.text, {k: v for k, v in c.spec.items() if (k, v) != ("required", True)}) for c in constraints)
    return tuple(sorted((path, json.dumps(_canonical(spec), sort_keys=True)) for path, spec in specs))


def _canonical(value: Any) -> Any:
    """The spec with its lists in a fixed order (`within: [/b, /a]` is `within: [/a, /b]`)."""
    if isinstance(value, Mapping):  # a `schema` is kept as written: order can matter in JSON Schema
        return {key: item if key == "schema" else _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return sorted((_canonical(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _agent_changes(
    old: Policy, new: Policy, catalog: Catalog, agent: str, before: _Access, after: _Access
) -> list[Change]:
    changes = [
        Change("agent", key, f"{before.settings[key]} → {after.settings[key]}")
        for key in before.settings.keys() & after.settings.keys()
        if before.settings[key] != after.settings[key]
    ]
    for name in after.tools.keys() - before.tools.keys():
        tool = after.tools[name]
        why = _cause(old, new, catalog, agent, name, "was")
        scopes = _scopes(frozenset().union(*tool.alternatives.values()))
        changes.append(Change("gained", name, f"{tool.klass}, via {scopes}: {_grants(tool)}{why}"))
    for name in before.tools.keys() - after.tools.keys():
        why = _cause(new, old, catalog, agent, name, "now")
        changes.append(Change("lost", name, f"{before.tools[name].klass}{why}"))
    for name in before.tools.keys() & after.tools.keys():
        was, now = before.tools[name], after.tools[name]
        if was.klass != now.klass:
            changes.append(Change("class", name, f"{was.klass} → {now.klass}"))
        changes += [
            Change(kind, name, detail) for kind, detail in compare_alternatives(was.alternatives, now.alternatives)
        ]
    changes += [Change("gained", p, "prompt", "prompt") for p in after.prompts - before.prompts]
    changes += [Change("lost", p, "prompt", "prompt") for p in before.prompts - after.prompts]
    changes += [Change("gained", g, _GLOB, "resources") for g in after.resources - before.resources]
    changes += [Change("lost", g, _GLOB, "resources") for g in before.resources - after.resources]
    return changes


def _grants(tool: _Tool) -> str:
    return " | ".join(_describe(alternative) for alternative in sorted(tool.alternatives))


def _describe(alternative: Alternative) -> str:
    return "; ".join(f"{path}: {_spec_text(json.loads(spec))}" for path, spec in alternative) or "unconstrained"


def _spec_text(spec: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {_value_text(value)}" for key, value in _flatten(spec).items()) or "required"


def _cause(policy: Policy, other: Policy, catalog: Catalog, agent: str, tool: str, when: str) -> str:
    """Why `tool` is not granted under `policy` where `other` grants it: a refusal, a deny rule, a class."""
    route = catalog.tools.get(tool)
    if route is None or agent not in policy.agents:
        return ""
    if (refusal := policy.refusal(agent)) is not None:
        return f" ({when} refused: {refusal})"
    if (deny := hiding_deny(policy, agent, route)) is not None:
        return f" ({when} hidden by a deny rule: {deny.reason})"
    klass = tool_class(policy, route).klass
    return f" ({when} of class {klass})" if klass != tool_class(other, route).klass else ""


# -- constraints -------------------------------------------------------------------------------------


def compare_alternatives(
    old: Mapping[Alternative, frozenset[str]], new: Mapping[Alternative, frozenset[str]]
) -> list[tuple[Kind, str]]:
    """How a tool's grants (each: its constraints → the scopes granting it so) changed.

    A grant that changed is paired with its likeliest former self (same scope, then most arguments in
    common) and compared argument by argument; grants left over were added (looser) or removed (tighter).
    """
    removed, added = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
    results: list[tuple[Kind, str]] = []
    while removed and added:
        was, now = max(((r, a) for r in removed for a in added), key=lambda pair: _likeness(old, new, *pair))
        removed.remove(was)
        added.remove(now)
        results += _compare_grant(dict(was), dict(now))
    results += [("loosened", f"also granted via {_scopes(new[a])}: {_describe(a)}") for a in added]
    results += [("tightened", f"no longer granted via {_scopes(old[r])}: {_describe(r)}") for r in removed]
    return results


def _likeness(
    old: Mapping[Alternative, frozenset[str]],
    new: Mapping[Alternative, frozenset[str]],
    was: Alternative,
    now: Alternative,
) -> tuple[bool, int, int]:
    paths = len({path for path, _ in was} & {path for path, _ in now})
    return bool(old[was] & new[now]), paths, len(set(was) & set(now))


def _scopes(scopes: frozenset[str]) -> str:
    return ", ".join(sorted(scopes))


def _compare_grant(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[Kind, str]]:
    results: list[tuple[Kind, str]] = []
    for path in sorted(old.keys() | new.keys()):
        if old.get(path) == new.get(path):
            continue
        was = json.loads(old[path]) if path in old else None
        now = json.loads(new[path]) if path in new else None
        results.append((compare_constraints(was, now), f"{path}: {_change_text(was, now)}"))
    return results


def _change_text(was: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> str:
    """`within ["/srv/docs/drafts"] → within ["/srv/docs"]`: the keys that differ, before and after."""
    if was is None or now is None:
        return f"{_spec_text(was) if was else 'unconstrained'} → {_spec_text(now) if now else 'unconstrained'}"
    flat_was, flat_now = _flatten(was), _flatten(now)
    keys = [key for key in {**flat_was, **flat_now} if flat_was.get(key) != flat_now.get(key)]
    before = ", ".join(f"{key} {_value_text(flat_was[key])}" for key in keys if key in flat_was) or "(none)"
    after = ", ".join(f"{key} {_value_text(flat_now[key])}" for key in keys if key in flat_now) or "(none)"
    return f"{before} → {after}"


def _flatten(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`url: {hosts: [...]}` as `url.hosts: [...]`, so that a change shows only the part that changed."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "url" and isinstance(value, Mapping):
            flat.update({f"url.{name}": item for name, item in value.items() if item is not None})
        else:
            flat[key] = value
    return flat


def _value_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def compare_constraints(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Kind:
    """Whether the constraint `new` (None: none) admits more values than `old` (loosened), fewer, or other ones."""
    if old is None or new is None:
        return "loosened" if new is None else "tightened"
    verdicts = {
        _compare_key(key, old.get(key), new.get(key)) for key in old.keys() | new.keys() if old.get(key) != new.get(key)
    }
    return verdicts.pop() if len(verdicts) == 1 else "changed"


def _compare_key(key: str, old: Any, new: Any) -> Kind:
    if old is None or new is None:  # a key added or removed: each narrows, but `required: false` widens
        narrows = not (key == "required" and (new if old is None else old) is False)
        return "tightened" if (old is None) == narrows else "loosened"
    wider: bool | None = None
    if key == "within":
        wider = True if _covers(new, old) else False if _covers(old, new) else None
    elif key == "not_within":
        wider = True if _covers(old, new) else False if _covers(new, old) else None
    elif key in ("max", "max_length"):
        wider = new > old
    elif key == "min":
        wider = new < old
    elif key == "enum":
        wider = _superset(new, old)
    elif key == "url":
        wider = _superset_all(new, old, ("schemes", "hosts", "ports"))
    elif key == "required":
        wider = new is False
    return "changed" if wider is None else "loosened" if wider else "tightened"


def _covers(dirs: Sequence[str], others: Sequence[str]) -> bool:
    """Whether every dir of `others` is one of `dirs` or beneath one (component-wise)."""
    return all(any(o == d or o.startswith(d.rstrip("/") + "/") for d in dirs) for o in others)


def _superset(new: Sequence[Any], old: Sequence[Any]) -> bool | None:
    was, now = {json.dumps(v, sort_keys=True) for v in old}, {json.dumps(v, sort_keys=True) for v in new}
    return True if now >= was else False if now <= was else None


def _superset_all(new: Mapping[str, Any], old: Mapping[str, Any], keys: Sequence[str]) -> bool | None:
    verdicts = set()
    for key in keys:
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if was is None or now is None:  # no `ports`: the scheme's default port only
            return None
        verdicts.add(_superset(now, was))
    return verdicts.pop() if len(verdicts) == 1 else None


# -- servers ----------------------------------------------------------------------------------------------


def _server_changes(old: Policy, new: Policy) -> list[Change]:
    changes = []
    for upstream in sorted(old.servers.keys() | new.servers.keys()):
        was, now = old.servers.get(upstream), new.servers.get(upstream)
        for key in ("sampling", "elicitation", "roots"):
            before = _capability(getattr(was, key, False))
            after = _capability(getattr(now, key, False))
            if before != after:
                looser = after != "deny" and (before == "deny" or after == "allow")
                changes.append(
                    Change("server", f"{upstream}.{key}", f"{before} → {after}" + (" (loosened)" if looser else ""))
                )
    return changes


def _capability(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return ("allow" if value else "deny") if isinstance(value, bool) else str(value)


# -- rendering -------------------------------------------------------------------------------------------

_LABELS = {"agent": "setting", "server": "server"}


def render_text(agents: Sequence[AgentDiff], servers: Sequence[Change]) -> str:
    """For a terminal: a heading per agent, one line per change (aligned across agents), and a summary."""
    rows = [(_LABELS.get(c.kind, c.kind), c.subject, c.detail) for agent in agents for c in agent.changes]
    aligned = iter(columns(rows, indent="  "))
    lines: list[str] = []
    for agent in agents:
        lines.append(agent.agent + ("" if agent.status == "changed" else f" ({agent.status})"))
        lines += [next(aligned) for _ in agent.changes]
    if servers:
        lines.append("servers (what upstreams may ask of every agent's client)")
        lines += columns(((c.subject, c.detail) for c in servers), indent="  ")
    return "\n".join([*lines, "", summary(agents, servers)])


def render_markdown(agents: Sequence[AgentDiff], servers: Sequence[Change], title: str) -> str:
    """For a pull-request comment: a table per agent."""
    lines = [f"### mcp-firewall diff: {_escape(title)}", "", summary(agents, servers), ""]
    for agent in agents:
        status = "" if agent.status == "changed" else f" ({agent.status})"
        lines += [f"#### `{agent.agent}`{status}", "", "| change | what | details |", "| --- | --- | --- |"]
        lines += [f"| {_badge(c.kind)} | `{_escape_code(c.subject)}` | {_escape(c.detail)} |" for c in agent.changes]
        lines.append("")
    if servers:
        lines += ["#### servers", "", "| setting | change |", "| --- | --- |"]
        lines += [f"| `{_escape_code(c.subject)}` | {_escape(c.detail)} |" for c in servers]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary(agents: Sequence[AgentDiff], servers: Sequence[Change]) -> str:
    if not agents and not servers:
        return "no changes"
    counts: dict[str, int] = {}
    for change in (c for agent in agents for c in agent.changes):
        counts[_LABELS.get(change.kind, change.kind)] = counts.get(_LABELS.get(change.kind, change.kind), 0) + 1
    parts = [f"{count} {kind}" for kind, count in counts.items()]
    parts += [f"{len(servers)} server setting{'s' if len(servers) != 1 else ''}"] if servers else []
    changed = f"{len(agents)} agent{'s' if len(agents) != 1 else ''} changed"
    return f"{changed}: {', '.join(parts)}" if parts else ", ".join(parts) or changed


def _badge(kind: Kind) -> str:
    label = _LABELS.get(kind, kind)
    return f"**{label}**" if kind in ("gained", "loosened") else label


def _escape(text: str) -> str:
    for char in "\\`*_|<>":
        text = text.replace(char, "\\" + char)
    return text


def _escape_code(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


# -- command -----------------------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Add `diff` to the `mcp-firewall` subcommands."""
    parser = commands.add_parser(
        "diff",
        help="what each agent gains and loses between two versions of the scope files",
        description="Compare two versions of the scope files against the same firewall file and tool "
        "definitions: per agent, tools gained and lost, class changes, and constraints loosened or tightened. "
        "Exit 0 no change, 1 changes, 2 when a version cannot be read.",
    )
    parser.add_argument("old", nargs="?", metavar="OLD", help="the old version: a scope file or a folder of them")
    parser.add_argument("new", nargs="?", metavar="NEW", help="the new version: a scope file or a folder of them")
    parser.add_argument(
        "--git",
        metavar="REV1..REV2",
        help="compare the firewall file's scope paths at two git revisions (`REV1..` is REV1..HEAD; "
        "a single REV compares it with the working tree)",
    )
    parser.add_argument("--format", choices=["text", "markdown"], default="text", help="text (default) or markdown")
    add_config_argument(parser)
    parser.set_defaults(command=_diff)


def _diff(args: argparse.Namespace) -> int:
    if bool(args.git) == bool(args.old or args.new) or (not args.git and not (args.old and args.new)):
        raise UsageError("give OLD and NEW (scope files or folders), or --git REV1..REV2")
    try:
        config = load_config(args.config)
        definitions = tool_definitions(config)
    except ConfigError as exc:  # nothing to compare: exit 2, never 1 ("changes")
        raise UsageError(str(exc)) from None
    report_unknown(definitions)
    with _versions(config, args) as (old, new, title):
        agents, servers = diff_policies(old, new, definitions.catalog())
    if args.format == "markdown":
        print(render_markdown(agents, servers, title), end="")
    elif agents or servers:
        print(render_text(agents, servers))
    else:
        print("no changes", file=sys.stderr)
    return 1 if agents or servers else 0


@contextmanager
def _versions(config: LoadedConfig, args: argparse.Namespace) -> Iterator[tuple[Policy, Policy, str]]:
    if not args.git:
        for path in (args.old, args.new):
            if not os.path.exists(path):
                raise UsageError(f"no scope file or folder at {path!r}")
        yield _compile(config, [Path(args.old)]), _compile(config, [Path(args.new)]), f"{args.old} → {args.new}"
        return
    first, dots, second = args.git.partition("..")
    entries = [Path(entry) for entry in config.firewall.scopes]
    top = Path(_git(config.path.parent, "rev-parse", "--show-toplevel").decode().strip())
    with tempfile.TemporaryDirectory(prefix="mcp-firewall-diff-") as tmp:
        old = _compile(config, _checkout(top, first, entries, Path(tmp, "old")), (Path(tmp, "old"), first))
        if not dots:
            yield old, _compile(config, entries), f"{first} → working tree"
            return
        second = second or "HEAD"
        new = _compile(config, _checkout(top, second, entries, Path(tmp, "new")), (Path(tmp, "new"), second))
        yield old, new, f"{first} → {second}"


def _compile(config: LoadedConfig, paths: Sequence[Path], checkout: tuple[Path, str] | None = None) -> Policy:
    upstreams = list(config.firewall.upstreams)
    try:
        scopes = load_scope_files(paths, upstreams=upstreams)
    except ConfigError as exc:
        text = str(exc)
        if checkout is not None:  # name files as `REV:path`, not by their temporary copies
            text = text.replace(f"{checkout[0]}{os.sep}", f"{checkout[1]}:")
        raise UsageError(text) from None
    return compile_policy(scopes, upstreams=upstreams, environment=config.firewall.environment)


def _checkout(top: Path, revision: str, entries: Sequence[Path], into: Path) -> list[Path]:
    """Copy the files under `entries` (paths in the working tree) as they are at `revision`; return the
    entries that exist there, as paths under `into`."""
    _git(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", what=f"{revision!r} is not a git revision")
    relative = []
    for entry in entries:
        inside = os.path.relpath(entry, top)
        if inside.startswith(".."):
            raise UsageError(f"--git: scope path {str(entry)!r} is outside the git repository at {str(top)!r}")
        relative.append(inside)
    listing = _git(top, "ls-tree", "-r", "-z", "--name-only", revision, "--", *relative)
    for name in filter(None, listing.decode().split("\0")):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git(top, "show", f"{revision}:{name}"))
    return [into / inside for inside in relative if (into / inside).exists()]


def _git(cwd: Path, *arguments: str, what: str | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise UsageError("--git needs the git command on PATH") from None
    if done.returncode != 0:
        raise UsageError(what or f"git {arguments[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
