"""Globs for selectors and resource URIs, and tool classification (SPEC §3)."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_firewall.policy.classify import (
    Classification,
    ServerClasses,
    classify,
    compile_classes,
    listing_conflicts,
)
from mcp_firewall.policy.globs import compile_glob, compile_uri_glob, uri_is_clean

# ---------------------------------------------------------------------------------------------
# Name globs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("files__read_text_file", "files__read_text_file", True),
        ("files__read_text_file", "files__read_text_filex", False),
        ("files__read_text_file", "Files__read_text_file", False),  # case-sensitive
        ("*", "", True),
        ("*", "anything at all", True),
        ("files__*", "files__", True),
        ("files__*", "files__write_file", True),
        ("files__*", "files_write_file", False),
        ("files__*", "xfiles__write", False),
        ("*__delete_*", "files__delete_file", True),
        ("*__delete_*", "files__delete_", True),
        ("*__delete_*", "files__undelete_x", False),
        ("*_file", "write_file", True),
        ("*_file", "write_files", False),
        ("search_*", "search_files", True),
        ("search_*", "SEARCH_files", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "acb", False),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("read.*", "read.x", True),
        ("read.*", "readxx", False),  # '.' is literal
        ("tool?", "tool1", False),  # '?' is literal
        ("tool?", "tool?", True),
        ("[ab]*", "a", False),  # '[' is literal
        ("[ab]*", "[ab]x", True),
        ("x*", "x\ny", True),
        ("\\d*", "\\dz", True),
    ],
)
def test_compile_glob(pattern: str, name: str, matches: bool) -> None:
    glob = compile_glob(pattern)
    assert glob(name) is matches
    assert glob.is_literal is ("*" not in pattern)


def test_compile_glob_rejects_empty() -> None:
    with pytest.raises(ValueError):
        compile_glob("")


# ---------------------------------------------------------------------------------------------
# URI globs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "uri", "matches"),
    [
        ("file:///srv/docs/**", "file:///srv/docs/a", True),
        ("file:///srv/docs/**", "file:///srv/docs/a/b/c.md", True),
        ("file:///srv/docs/**", "file:///srv/docs/", True),
        ("file:///srv/docs/**", "file:///srv/docs", False),
        ("file:///srv/docs/**", "file:///srv/docs2/a", False),
        ("file:///srv/docs/**", "FILE:///srv/docs/a", False),  # case-sensitive
        ("file:///srv/docs/*", "file:///srv/docs/a.md", True),
        ("file:///srv/docs/*", "file:///srv/docs/a/b.md", False),  # '*' stays within one segment
        ("file:///srv/docs/*.md", "file:///srv/docs/a.md", True),
        ("file:///srv/docs/*.md", "file:///srv/docs/a.txt", False),
        ("file:///srv/*/index.md", "file:///srv/docs/index.md", True),
        ("file:///srv/*/index.md", "file:///srv/a/b/index.md", False),
        ("file:///srv/**/index.md", "file:///srv/a/b/index.md", True),
        ("db://tables/*", "db://tables/users", True),
        ("db://tables/users", "db://tables/users", True),
        ("db://tables/users", "db://tables/users2", False),
        ("db://t/a.b", "db://t/aXb", False),  # '.' is literal
        # hygiene: wildcards never let a URI climb out of its tree
        ("file:///srv/docs/**", "file:///srv/docs/../etc/passwd", False),
        ("file:///srv/docs/**", "file:///srv/docs/a/..", False),
        ("file:///srv/docs/**", "file:///srv/docs/./a", False),
        ("file:///srv/docs/**", "file:///srv/docs/%2e%2e/etc/passwd", False),
        ("file:///srv/docs/**", "file:///srv/docs/%2E%2E/etc/passwd", False),
        ("file:///srv/docs/**", "file:///srv/docs/%252e%252e/etc/passwd", False),
        ("file:///srv/docs/**", "file:///srv/docs/.%2e/etc", False),
        ("file:///srv/docs/*", "file:///srv/docs/%2F..%2Fetc%2Fpasswd", False),
        ("file:///srv/docs/*", "file:///srv/docs/..%2Fetc", False),
        ("file:///srv/docs/*", "file:///srv/docs/a%5C..%5Cb", False),
        ("file:///srv/docs/**", "file:///srv/docs/a\\..\\..\\etc", False),
        ("file:///srv/docs/**", "file:///srv/docs/a%00b", False),
        ("file:///srv/docs/**", "file:///srv/docs/...", True),  # three dots is a name
        ("file:///srv/docs/**", "file:///srv/docs/a%20b", True),
    ],
)
def test_compile_uri_glob(pattern: str, uri: str, matches: bool) -> None:
    assert compile_uri_glob(pattern)(uri) is matches


def test_literal_uri_globs_compare_exactly() -> None:
    glob = compile_uri_glob("file:///srv/docs/../x")
    assert glob.is_literal and glob("file:///srv/docs/../x")
    assert not glob("file:///srv/x")


@pytest.mark.parametrize("pattern", ["", "file:///***", "file:///srv/****"])
def test_bad_uri_globs(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_uri_glob(pattern)


@pytest.mark.parametrize(
    ("uri", "clean"),
    [
        ("file:///a/b", True),
        ("file:///a/../b", False),
        ("x://a/%2e", False),
        ("x://a/%2Fb", False),
        ("x://a/b%3Fc", True),
    ],
)
def test_uri_is_clean(uri: str, clean: bool) -> None:
    assert uri_is_clean(uri) is clean


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------

FILES = ServerClasses(
    read=("read_text_file", "read_multiple_files", "list_directory", "search_*", "get_file_info"),
    write=("create_directory",),
    destructive=("write_file", "edit_file", "move_file"),
)
OVERLAP = ServerClasses(read=("get_*", "list_*"), write=("*_draft",), destructive=("delete_*", "get_and_delete"))
TRUSTING = ServerClasses(read=("status",), trust_annotations=True)


@pytest.mark.parametrize(
    ("server", "tool", "annotations", "expected"),
    [
        (FILES, "read_text_file", None, ("read", False, "name")),
        (FILES, "search_files", None, ("read", False, "glob")),
        (FILES, "create_directory", None, ("write", False, "name")),
        (FILES, "write_file", None, ("destructive", False, "name")),
        (FILES, "unknown_tool", None, ("destructive", False, "default")),
        # an upstream's annotations do not count unless the reviewer trusts them
        (FILES, "unknown_tool", {"readOnlyHint": True}, ("destructive", False, "default")),
        (FILES, "write_file", {"readOnlyHint": True}, ("destructive", False, "name")),
        (OVERLAP, "get_x", None, ("read", False, "glob")),
        (OVERLAP, "get_draft", None, ("write", True, "conflict")),  # read glob and write glob
        (OVERLAP, "list_draft", None, ("write", True, "conflict")),
        (OVERLAP, "delete_draft", None, ("destructive", True, "conflict")),
        (OVERLAP, "get_and_delete", None, ("destructive", True, "conflict")),  # name vs glob
        (OVERLAP, "Get_x", None, ("destructive", False, "default")),
        (TRUSTING, "status", {"readOnlyHint": False, "destructiveHint": True}, ("read", False, "name")),
        (TRUSTING, "t", {"readOnlyHint": True}, ("read", False, "annotations")),
        (TRUSTING, "t", {"readOnlyHint": True, "destructiveHint": True}, ("read", False, "annotations")),
        (TRUSTING, "t", {"readOnlyHint": False, "destructiveHint": False}, ("write", False, "annotations")),
        (TRUSTING, "t", {"destructiveHint": False}, ("write", False, "annotations")),  # readOnlyHint defaults false
        (TRUSTING, "t", {"readOnlyHint": False}, ("destructive", False, "annotations")),
        (TRUSTING, "t", {"readOnlyHint": False, "destructiveHint": True}, ("destructive", False, "annotations")),
        (TRUSTING, "t", {"readOnlyHint": "true"}, ("destructive", False, "annotations")),  # not a boolean
        (TRUSTING, "t", {"readOnlyHint": 1}, ("destructive", False, "annotations")),
        (TRUSTING, "t", {"destructiveHint": 0, "readOnlyHint": False}, ("destructive", False, "annotations")),
        (TRUSTING, "t", {"idempotentHint": True}, ("destructive", False, "annotations")),
        (TRUSTING, "t", {}, ("destructive", False, "default")),
        (TRUSTING, "t", None, ("destructive", False, "default")),
        (None, "t", {"readOnlyHint": True}, ("destructive", False, "default")),
    ],
)
def test_classify(
    server: ServerClasses | None, tool: str, annotations: dict[str, Any] | None, expected: tuple[str, bool, str]
) -> None:
    result = classify(tool, annotations, server)
    assert isinstance(result, Classification)
    assert tuple(result) == expected
    klass, ambiguous, source = result
    assert (klass, ambiguous, source) == expected


def test_matches_reports_every_matching_entry() -> None:
    compiled = compile_classes(OVERLAP)
    assert compiled.matches("get_and_delete") == {"read": ["get_*"], "destructive": ["get_and_delete"]}
    assert compiled.matches("nothing") == {}


def test_server_classes_accepts_lists_and_adapts_objects() -> None:
    class Model:
        read = ["a"]
        write = None
        destructive = ["b*"]
        trust_annotations = True

    adapted = ServerClasses.of(Model())
    assert adapted == ServerClasses(read=("a",), destructive=("b*",), trust_annotations=True)
    assert hash(adapted) == hash(ServerClasses(read=["a"], destructive=["b*"], trust_annotations=True))  # type: ignore[arg-type]
    assert ServerClasses.of(None) == ServerClasses()


def test_listing_conflicts() -> None:
    bad = ServerClasses(read=("x", "y*"), write=("x",), destructive=("y*", "z"))
    assert listing_conflicts(bad) == [
        "'x' is listed under both read and write",
        "'y*' is listed under both read and destructive",
    ]
    assert listing_conflicts(OVERLAP) == []  # overlapping globs are resolved at classification time
