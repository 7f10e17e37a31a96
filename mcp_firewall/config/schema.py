"""JSON Schemas (draft 2020-12) of the firewall file and scope files, for editors and CI.

The committed copies live in `scopes/firewall.schema.json` and `scopes/scope.schema.json`; a test fails
when they are stale. Regenerate them with `python -m mcp_firewall.config.schema [DIR]`.

Editors that use yaml-language-server pick a schema up from a first-line comment:
`# yaml-language-server: $schema=./scope.schema.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .model import FirewallFile, ScopeFile

__all__ = ["SCHEMA_DIR", "SCHEMA_FILES", "firewall_schema", "main", "render_schema", "scope_schema", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "scopes"
SCHEMA_FILES: dict[str, type[BaseModel]] = {"firewall.schema.json": FirewallFile, "scope.schema.json": ScopeFile}
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TITLES: dict[type[BaseModel], str] = {
    FirewallFile: "mcp-firewall firewall file (firewall.yaml)",
    ScopeFile: "mcp-firewall scope file (scopes/*.yaml)",
}


def _schema(model: type[BaseModel], file_name: str) -> dict[str, Any]:
    body = model.model_json_schema(by_alias=True, mode="validation")
    _close_pattern_properties(body)
    return {"$schema": _DRAFT, "$id": f"urn:mcp-firewall:{file_name}", **body, "title": _TITLES[model]}


def _close_pattern_properties(node: Any) -> None:
    """Names that miss the pattern are errors for the loader, so they are for editors too."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_properties(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_properties(value)


def firewall_schema() -> dict[str, Any]:
    """The JSON Schema of `firewall.yaml`."""
    return _schema(FirewallFile, "firewall.schema.json")


def scope_schema() -> dict[str, Any]:
    """The JSON Schema of a scope file."""
    return _schema(ScopeFile, "scope.schema.json")


def render_schema(file_name: str) -> str:
    """The exact text committed as `file_name` (one of `SCHEMA_FILES`)."""
    return json.dumps(_schema(SCHEMA_FILES[file_name], file_name), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write both schemas into `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name in SCHEMA_FILES:
        target = directory / file_name
        target.write_text(render_schema(file_name), encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m mcp_firewall.config.schema [DIR]`: regenerate the schemas (default: the repository's scopes/)."""
    args = sys.argv[1:] if argv is None else argv
    for path in write_schemas(Path(args[0]) if args else SCHEMA_DIR):
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
