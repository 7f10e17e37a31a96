"""Shared fixtures: the anyio backend, the repository root and the Node peers in node_modules."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def find_node_bin(name: str) -> str:
    """Path of an executable in node_modules/.bin, e.g. "mcp-server-everything".

    Skips the calling test, with a clear message, when the Node peers are not installed.
    """
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the Node MCP peers need Node >= 20")
    path = NODE_BIN / name
    if not path.exists():
        pytest.skip(f"node_modules/.bin/{name} not found: run `make venv` (it runs `npm ci`) first")
    return str(path)


@pytest.fixture(scope="session")
def node_bin() -> Callable[[str], str]:
    """`node_bin("mcp-server-filesystem")` -> absolute path, or skip the test if it is not installed."""
    return find_node_bin
