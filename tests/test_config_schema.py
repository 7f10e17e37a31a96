"""The JSON Schemas editors use: committed, fresh, and in agreement with the loader on the examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mcp_firewall.config._yaml import parse_yaml
from mcp_firewall.config.schema import SCHEMA_DIR, SCHEMA_FILES, main, render_schema, write_schemas

FIXTURES = Path(__file__).parent / "fixtures" / "config"
REGENERATE = "python -m mcp_firewall.config.schema"


def _validator(file_name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8")))


def _yaml(path: Path) -> Any:
    return parse_yaml(path.read_text(encoding="utf-8"), path.name).data


@pytest.mark.parametrize("file_name", sorted(SCHEMA_FILES))
def test_the_committed_schema_is_up_to_date(file_name: str) -> None:
    committed = (SCHEMA_DIR / file_name).read_text(encoding="utf-8")
    assert committed == render_schema(file_name), f"{file_name} is stale: run `{REGENERATE}`"


@pytest.mark.parametrize("file_name", sorted(SCHEMA_FILES))
def test_the_schema_is_a_valid_draft_2020_12_schema(file_name: str) -> None:
    schema = json.loads(render_schema(file_name))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(file_name) and schema["title"]


def test_the_valid_examples_pass_the_schemas() -> None:
    assert list(_validator("firewall.schema.json").iter_errors(_yaml(FIXTURES / "valid" / "firewall.yaml"))) == []
    for path in sorted((FIXTURES / "valid" / "scopes").glob("*.y*ml")):
        assert list(_validator("scope.schema.json").iter_errors(_yaml(path))) == [], path


@pytest.mark.parametrize(
    ("fixture", "file_name"),
    [
        ("invalid/scopes/unknown_key.yaml", "scope.schema.json"),
        ("invalid/scopes/two_selectors.yaml", "scope.schema.json"),
        ("invalid/scopes/bad_arg_path.yaml", "scope.schema.json"),
        ("invalid/scopes/bad_name.yaml", "scope.schema.json"),
        ("invalid/firewall/command_and_url.yaml", "firewall.schema.json"),
        ("invalid/firewall/upstream_name.yaml", "firewall.schema.json"),
        ("invalid/firewall/symmetric_jwt_algorithm.yaml", "firewall.schema.json"),
    ],
)
def test_an_editor_flags_what_the_loader_refuses(fixture: str, file_name: str) -> None:
    assert list(_validator(file_name).iter_errors(_yaml(FIXTURES / fixture)))


def test_write_schemas_writes_both_files(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert sorted(path.name for path in written) == sorted(SCHEMA_FILES)
    for path in written:
        assert path.read_text(encoding="utf-8") == render_schema(path.name)


def test_the_module_command_regenerates_into_a_given_folder(tmp_path: Path) -> None:
    assert main([str(tmp_path / "out")]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(SCHEMA_FILES)
