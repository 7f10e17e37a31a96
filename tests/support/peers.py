"""The policy tests' world: what real servers advertise (tests/fixtures/policy/peers/), plus `lab` tools."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from mcp_firewall.catalog import Catalog, UpstreamLists

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "policy"
PEERS = {
    "files": "server-filesystem",
    "git": "mcp-server-git",
    "fetch": "mcp-server-fetch",
    "time": "mcp-server-time",
    "memory": "server-memory",
    "everything": "server-everything",
}
UPSTREAMS = (*PEERS, "lab")


def upstream_lists(name: str, dump: Path) -> UpstreamLists:
    """One upstream's lists, read from a recorded `tools/list` (and friends) dump."""
    data = json.loads(dump.read_text(encoding="utf-8"))
    return UpstreamLists(
        name,
        True,
        tools=data.get("tools") or (),
        prompts=data.get("prompts") or (),
        resources=data.get("resources") or (),
        templates=data.get("resource_templates") or (),
    )


@cache
def all_lists() -> tuple[UpstreamLists, ...]:
    """Every peer's lists and the `lab` upstream's, in a fixed order."""
    lists = [upstream_lists(name, FIXTURES / "peers" / f"{dump}.json") for name, dump in PEERS.items()]
    return (*lists, upstream_lists("lab", FIXTURES / "lab.json"))


@cache
def catalog() -> Catalog:
    return Catalog.build(all_lists())
