"""YAML with positions: every node's line and column recorded, duplicate keys refused, no implicit dates.

`parse_yaml(text, file)` returns plain Python data (dicts, lists, str, int, float, bool, None) and a
`SourceMap` from each value's path (`("scopes", "docs-reader", "allow", 0)`) to where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import ConfigIssue
from ._base import Location

__all__ = ["DataPath", "ParsedYaml", "SourceMap", "parse_yaml", "render_path"]

DataPath = tuple[Any, ...]
_MAX_NODES = 1_000_000
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: `2027-06-30` stays a string, and models decide."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


@dataclass
class SourceMap:
    """Where each value of one file was written. Keys are data paths; positions are 1-based."""

    file: str
    keys: dict[DataPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[DataPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: DataPath) -> Location:
        """The entry at `path` (its key, for a mapping entry), or its closest ancestor that was written."""
        for end in range(len(path), -1, -1):
            prefix = tuple(path[:end])
            position = self.keys.get(prefix) or self.values.get(prefix)
            if position is not None:
                return Location(self.file, *position)
        return Location(self.file, 1, 1)

    def locate_value(self, path: DataPath) -> Location:
        """The value at `path` itself (not its key), else as `locate`."""
        position = self.values.get(tuple(path))
        return Location(self.file, *position) if position is not None else self.locate(path)


@dataclass
class ParsedYaml:
    data: Any
    source: SourceMap
    issues: list[ConfigIssue]


class _TooLarge(Exception):
    pass


def render_path(path: DataPath) -> str:
    """`scopes.docs-reader.allow[0].args."paths[*]"`: keys joined by dots, list indexes in brackets."""
    parts: list[str] = []
    for element in path:
        if isinstance(element, bool) or element is None:
            element = {True: "true", False: "false", None: "null"}[element]
        if isinstance(element, int):
            parts.append(f"[{element}]")
            continue
        text = str(element)
        if not text or any(not (c.isalnum() or c in "_-") for c in text):
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(("." if parts else "") + text)
    return "".join(parts)


def parse_yaml(text: str, file: str) -> ParsedYaml:
    """Parse one YAML document; syntax errors and duplicate keys become issues, never exceptions."""
    source = SourceMap(file)
    loader = _Loader(text)
    builder = _Builder(loader, source)
    try:
        node = loader.get_single_node()
        data = builder.build(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(None, source, [_parse_issue(file, exc)])
    except yaml.YAMLError as exc:
        return ParsedYaml(None, source, [ConfigIssue(file, 1, 1, "parse_error", str(exc))])
    except _TooLarge as exc:
        return ParsedYaml(None, source, [ConfigIssue(file, 1, 1, "parse_error", str(exc))])
    finally:
        loader.dispose()
    return ParsedYaml(data, source, builder.issues)


def _parse_issue(file: str, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    context = ""
    if exc.context:
        start = exc.context_mark
        started = f" that starts at line {start.line + 1}" if start is not None and start is not mark else ""
        context = f" ({exc.context}{started})"
    return ConfigIssue(file, line, column, "parse_error", f"invalid YAML: {problem}{context}")


class _Builder:
    """Turns composed nodes into data, recording positions and refusing duplicate keys."""

    def __init__(self, loader: _Loader, source: SourceMap) -> None:
        self.loader = loader
        self.source = source
        self.issues: list[ConfigIssue] = []
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: Node, path: DataPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooLarge(f"the document expands to more than {_MAX_NODES} values (aliases); refusing to load it")
        if id(node) in self.active:
            raise _TooLarge("an alias refers to a value that contains it; refusing to load a recursive document")
        self.source.values.setdefault(path, _position(node))
        _check_tag(node)
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[Any, Any]:
        first_seen = self._explicit_keys(node)
        self.loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is _UNUSABLE or first_seen.get(_hashable(key), key_node) is not key_node:
                continue
            self.source.keys[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _explicit_keys(self, node: MappingNode) -> dict[Any, Node]:
        """The first node of each key written in this mapping; later ones become duplicate_key issues."""
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node)
            if key is _UNUSABLE:
                continue
            first = seen.setdefault(_hashable(key), key_node)
            if first is not key_node:
                self._duplicate(key, first, key_node)
        return seen

    def _duplicate(self, key: Any, first: Node, second: Node) -> None:
        line, column = _position(second)
        first_line, first_column = _position(first)
        message = (
            f"duplicate key {key!r}: first defined at line {first_line}, column {first_column}; "
            f"YAML would silently keep only one of them"
        )
        self.issues.append(ConfigIssue(self.source.file, line, column, "duplicate_key", message))

    def _key(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node)
        line, column = _position(node)
        message = "a mapping key must be a plain value (a name), not a list or a mapping"
        issue = ConfigIssue(self.source.file, line, column, "parse_error", message)
        if issue not in self.issues:
            self.issues.append(issue)
        return _UNUSABLE


_UNUSABLE = object()


_COLLECTION_TAGS: dict[type[Node], str] = {SequenceNode: "tag:yaml.org,2002:seq", MappingNode: "tag:yaml.org,2002:map"}


def _check_tag(node: Node) -> None:
    """Lists and mappings carry no tag (scalars' tags are checked by the SafeLoader's constructors)."""
    expected = _COLLECTION_TAGS.get(type(node))
    if expected is not None and node.tag != expected:
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {node.tag!r} is not allowed here: remove it", node.start_mark
        )


def _hashable(key: Any) -> Any:
    return (type(key).__name__, key)


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
