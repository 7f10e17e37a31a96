"""Load `firewall.yaml` and the scope files it names, reporting every problem at once.

Pipeline, per file: read → parse with positions (duplicate keys refused) → shape (a non-empty mapping)
→ `${VAR}` expansion (firewall file only) → relative paths resolved against the firewall file's folder
→ model validation → semantic checks across files. Every issue from every file is collected, sorted by
location, and raised once as `ConfigError`. Paths in issues are relative to the working directory when
the file is beneath it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ..errors import ConfigError, ConfigIssue
from ._base import ConfigModel, Location, set_source
from ._fields import describe
from ._messages import validation_issues
from ._semantic import ScopeDocument, check_scope_documents
from ._yaml import DataPath, SourceMap, parse_yaml
from .envvars import expand_tree
from .model import FirewallFile, ScopeFile

__all__ = ["LoadedConfig", "display_path", "find_scope_files", "load_firewall_file", "load_scope_files", "validate"]

_M = TypeVar("_M", bound=ConfigModel)
_SCOPE_SUFFIXES = (".yaml", ".yml")
# Values of the firewall file that name files or folders: resolved against the firewall file's folder.
_PATH_FIELDS: tuple[DataPath, ...] = (
    ("audit", "path"),
    ("telemetry", "path"),
    ("auth", "keys"),
    ("auth", "jwt", "jwks"),
)


@dataclass(frozen=True)
class LoadedConfig:
    """A valid firewall file and the policy merged from its scope files."""

    path: Path
    """The firewall file, absolute."""
    firewall: FirewallFile
    """The firewall file; its relative paths (scopes, cwd, audit.path, ...) are made absolute."""
    policy: ScopeFile
    """Every scope file merged: servers, scopes and agents by name; deny rules concatenated in file order."""
    scope_files: tuple[Path, ...]
    """The scope files read, in merge order."""
    sources: Mapping[str, SourceMap] = field(default_factory=dict)
    """Per displayed file name: where each value was written (data path → line, column)."""


def display_path(path: Path) -> str:
    """How a file is named in issues: relative to the working directory when beneath it, else absolute."""
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    return os.path.relpath(absolute, cwd) if absolute.startswith(cwd + os.sep) else absolute


def load_firewall_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load the firewall file and its scope files; raise `ConfigError` with every issue found."""
    run = _Run()
    firewall_path = Path(os.path.abspath(path))
    firewall, upstreams, entries = run.firewall(firewall_path, os.environ if environ is None else environ)
    documents, files, complete = run.scope_documents(entries)
    run.issues.extend(check_scope_documents(documents, upstreams, complete=complete))
    if run.issues or firewall is None:
        raise ConfigError(run.issues)
    return LoadedConfig(firewall_path, firewall, _merge(documents), tuple(files), run.sources)


def load_scope_files(paths: Sequence[str | os.PathLike[str]], *, upstreams: Collection[str] | None = None) -> ScopeFile:
    """Load and merge scope files and folders; `upstreams` (the firewall file's names) enables the checks
    that scopes name real upstreams. Raise `ConfigError` with every issue found."""
    run = _Run()
    entries = [_ScopeEntry(Path(os.path.abspath(p)), os.fspath(p), None) for p in paths]
    documents, _, complete = run.scope_documents(entries)
    run.issues.extend(check_scope_documents(documents, upstreams, complete=complete))
    if run.issues:
        raise ConfigError(run.issues)
    return _merge(documents)


def find_scope_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The scope files that `paths` name: files as given, folders one level deep (*.yaml, *.yml, sorted);
    each file once. Paths that do not exist are skipped (the loaders report them)."""
    found: dict[str, Path] = {}
    for entry in paths:
        for file in _files_of(Path(os.path.abspath(entry))):
            found.setdefault(os.path.realpath(file), file)
    return list(found.values())


def validate(config_path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Every issue in the firewall file and its scope files, sorted; empty when the configuration is valid."""
    try:
        load_firewall_file(config_path, environ)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in _SCOPE_SUFFIXES and p.is_file())
    return [path] if path.exists() else []


def _merge(documents: Sequence[ScopeDocument]) -> ScopeFile:
    servers: dict[str, Any] = {}
    scopes: dict[str, Any] = {}
    agents: dict[str, Any] = {}
    deny: list[Any] = []
    for doc in documents:
        for name, server in doc.model.servers.items():
            servers.setdefault(name, server)
        for name, scope in doc.model.scopes.items():
            scopes.setdefault(name, scope)
        for name, agent in doc.model.agents.items():
            agents.setdefault(name, agent)
        deny.extend(doc.model.deny)
    return ScopeFile(servers=servers, scopes=scopes, deny=deny, agents=agents)


def attach_sources(model: ConfigModel, path: DataPath, source: SourceMap) -> None:
    """Give `model` and every model inside it the position it was written at."""
    set_source(model, source.locate(path))
    for name, info in type(model).model_fields.items():
        _attach_value(getattr(model, name), (*path, info.alias or name), source)


def _attach_value(value: Any, path: DataPath, source: SourceMap) -> None:
    if isinstance(value, ConfigModel):
        attach_sources(value, path, source)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _attach_value(item, (*path, index), source)
    elif isinstance(value, dict):
        for key, item in value.items():
            _attach_value(item, (*path, key), source)


@dataclass(frozen=True)
class _ScopeEntry:
    path: Path
    written: str
    origin: Location | None
    index: int = -1


def _scope_entries(written: Any, resolved: Any, source: SourceMap) -> list[_ScopeEntry]:
    if not isinstance(written, list) or not isinstance(resolved, list):
        return []
    return [
        _ScopeEntry(Path(path), text, source.locate_value(("scopes", index)), index)
        for index, (text, path) in enumerate(zip(written, resolved, strict=True))
        if isinstance(text, str) and isinstance(path, str)
    ]


class _Run:
    """One load: the issues found so far and the source maps of the files read."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []
        self.sources: dict[str, SourceMap] = {}

    def firewall(
        self, path: Path, environ: Mapping[str, str]
    ) -> tuple[FirewallFile | None, set[str] | None, list[_ScopeEntry]]:
        data, source = self._read(path, FirewallFile)
        if data is None or source is None:
            return None, None, []
        written_scopes = data.get("scopes")
        expansion = expand_tree(data, environ)
        for value_path, problem in expansion.problems:
            here = source.locate_value(value_path)
            self.issues.append(ConfigIssue(here.file, here.line, here.column, problem.code, problem.message))
        data = expansion.data
        _resolve_paths(data, path.parent)
        model = self._validate(FirewallFile, data, source, expansion.written)
        raw_upstreams = data.get("upstreams")
        upstreams = {str(name) for name in raw_upstreams} if isinstance(raw_upstreams, dict) else None
        entries = _scope_entries(written_scopes, data.get("scopes"), source)
        broken = {value_path for value_path, _ in expansion.problems}
        return model, upstreams, [entry for entry in entries if ("scopes", entry.index) not in broken]

    def scope_documents(self, entries: Sequence[_ScopeEntry]) -> tuple[list[ScopeDocument], list[Path], bool]:
        """The scope files that validated, every file read (in order), and whether all of them validated."""
        documents: list[ScopeDocument] = []
        files: dict[str, Path] = {}
        missing = [entry for entry in entries if not entry.path.exists()]
        for entry in missing:
            self._missing(entry)
        for entry in entries:
            for file in _files_of(entry.path):
                if files.setdefault(os.path.realpath(file), file) is file:
                    document = self._scope_document(file)
                    documents += [document] if document is not None else []
        return documents, list(files.values()), not missing and len(documents) == len(files)

    def _scope_document(self, path: Path) -> ScopeDocument | None:
        data, source = self._read(path, ScopeFile)
        if data is None or source is None:
            return None
        model = self._validate(ScopeFile, data, source, {})
        return ScopeDocument(source.file, model, source) if model is not None else None

    def _missing(self, entry: _ScopeEntry) -> None:
        name = display_path(entry.path)
        here = entry.origin or Location(name, 1, 1)
        written = f" (resolved to {name})" if entry.written != name else ""
        message = (
            f"scope path {entry.written!r}{written} does not exist: "
            f"give a scope file or a folder of *.yaml / *.yml files"
        )
        self.issues.append(ConfigIssue(here.file, here.line, here.column, "read_error", message))

    def _read(self, path: Path, model: type[ConfigModel]) -> tuple[dict[Any, Any] | None, SourceMap | None]:
        name = display_path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            return self._fail(Location(name, 1, 1), "read_error", f"cannot read {name}: {exc.strerror}")
        except UnicodeDecodeError as exc:
            message = f"{name} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
            return self._fail(Location(name, 1, 1), "read_error", message)
        parsed = parse_yaml(text, name)
        self.sources[name] = parsed.source
        self.issues.extend(parsed.issues)
        if parsed.issues and parsed.data is None:
            return None, None
        return self._shape(parsed.data, parsed.source, model)

    def _shape(
        self, data: Any, source: SourceMap, model: type[ConfigModel]
    ) -> tuple[dict[Any, Any] | None, SourceMap | None]:
        keys = ", ".join(info.alias or name for name, info in model.model_fields.items())
        if data is None:
            return self._fail(
                Location(source.file, 1, 1), "empty_file", f"the file is empty: expected a mapping with keys {keys}"
            )
        if not isinstance(data, dict):
            message = f"expected a mapping at the top level (keys {keys}), found {describe(data)}"
            return self._fail(source.locate_value(()), "schema_error", message)
        return data, source

    def _fail(self, where: Location, code: str, message: str) -> tuple[None, None]:
        self.issues.append(ConfigIssue(where.file, where.line, where.column, code, message))
        return None, None

    def _validate(
        self, model: type[_M], data: dict[Any, Any], source: SourceMap, written: Mapping[DataPath, str]
    ) -> _M | None:
        try:
            result = model.model_validate(data)
        except ValidationError as exc:
            self.issues.extend(validation_issues(exc, model, data, source, written))
            return None
        attach_sources(result, (), source)
        return result


def _resolve_paths(data: dict[Any, Any], base: Path) -> None:
    """Make the firewall file's relative paths absolute, in place (only where they are strings)."""
    for path in _PATH_FIELDS:
        parent = _get(data, path[:-1])
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if isinstance(value, str) and isinstance(parent, dict) and not value.startswith(("http://", "https://")):
            parent[path[-1]] = _absolute(base, value)
    upstreams = data.get("upstreams")
    for upstream in upstreams.values() if isinstance(upstreams, dict) else ():
        if isinstance(upstream, dict) and isinstance(upstream.get("cwd"), str):
            upstream["cwd"] = _absolute(base, upstream["cwd"])
    scopes = data.get("scopes")
    if isinstance(scopes, list):
        data["scopes"] = [_absolute(base, entry) if isinstance(entry, str) else entry for entry in scopes]


def _get(data: Any, path: DataPath) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _absolute(base: Path, value: str) -> str:
    return os.path.normpath(os.path.join(base, value)) if value else value
