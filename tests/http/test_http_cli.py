"""`mcp-firewall keys …` and the start-up rules of `run --transport http|sse` (SPEC §5, §6)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from fwhttp import write_config

from mcp_firewall.cli import main
from mcp_firewall.keys import KeyRing, hash_key, read_keys


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, auth={"keys": "keys.yaml"})


def _keys(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keys", *argv, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_new_prints_the_key_alone_once_and_stores_only_its_hash(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _keys(config, capsys, "new", "--agent", "alice", "--label", "laptop", "--expires", "2099-01-31")
    key = out.strip()
    assert code == 0 and out == key + "\n"
    assert key.startswith("mcpfw_")
    stored = (config.parent / "keys.yaml").read_text(encoding="utf-8")
    assert key not in stored and hash_key(key).hex() in stored
    assert stat.S_IMODE((config.parent / "keys.yaml").stat().st_mode) == 0o600
    assert "laptop" in err and key not in err
    ring = KeyRing(config.parent / "keys.yaml")
    ring.load()
    record = ring.verify(key)
    assert record is not None and (record.agent, record.label, record.expires) == ("alice", "laptop", "2099-01-31")


def test_keys_list_shows_every_key_but_never_a_key_itself(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = _keys(config, capsys, "new", "--agent", "alice", "--label", "a1")
    _, second, _ = _keys(config, capsys, "new", "--agent", "bob", "--label", "b1")
    _keys(config, capsys, "revoke", "b1")
    code, table, _ = _keys(config, capsys, "list")
    _, as_json, _ = _keys(config, capsys, "list", "--format", "json")
    assert code == 0
    assert first.strip() not in table and second.strip() not in table
    rows = {row["label"]: row for row in json.loads(as_json)}
    assert (rows["a1"]["state"], rows["b1"]["state"]) == ("active", "revoked")
    assert rows["a1"]["hint"].startswith("mcpfw_") and len(rows["a1"]["hint"]) < 15


def test_keys_revoke_of_an_unknown_label_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _keys(config, capsys, "revoke", "nope")
    assert code == 2 and "nope" in err


def test_keys_rotate_gives_the_same_agent_a_new_key_and_retires_the_old_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, old, _ = _keys(config, capsys, "new", "--agent", "alice", "--label", "old")
    code, new, _ = _keys(config, capsys, "rotate", "old", "--overlap", "1h", "--new-label", "new")
    assert code == 0 and new.strip() != old.strip()
    records = {r.label: r for r in read_keys(config.parent / "keys.yaml")}
    assert records["new"].agent == "alice" and records["new"].digest == hash_key(new.strip())
    assert records["old"].expires is not None and records["old"].revoked is None


def test_keys_new_refuses_an_agent_the_scope_files_do_not_define(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _keys(config, capsys, "new", "--agent", "alicee")
    assert code == 2 and out == "" and "alicee" in err


def test_a_leaked_key_can_be_revoked_even_when_the_scope_files_are_broken(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _keys(config, capsys, "new", "--agent", "alice", "--label", "leaked")
    (config.parent / "scopes" / "agents.yaml").write_text("agents: [not, a, mapping", encoding="utf-8")
    code, _, _ = _keys(config, capsys, "revoke", "leaked")
    assert code == 0
    assert read_keys(config.parent / "keys.yaml")[0].revoked is not None


def _run(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", "--config", str(config), "--transport", "http", *argv])
    return code, capsys.readouterr().err


def test_http_without_auth_needs_an_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(write_config(tmp_path, auth=None), capsys)
    assert code == 2 and "--agent" in err


def test_local_single_agent_mode_refuses_a_non_loopback_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(write_config(tmp_path, auth=None), capsys, "--agent", "alice", "--host", "0.0.0.0")
    assert code == 2 and "loopback" in err


def test_local_single_agent_mode_refuses_an_unknown_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(write_config(tmp_path, auth=None), capsys, "--agent", "nobody")
    assert code == 2 and "nobody" in err


def test_agent_cannot_be_named_on_the_command_line_when_credentials_name_agents(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(config, capsys, "--agent", "alice")
    assert code == 2 and "auth" in err


def test_an_invalid_keys_file_stops_the_start(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config.parent / "keys.yaml").write_text(yaml.safe_dump({"keys": [{"label": "x"}]}), encoding="utf-8")
    code, err = _run(config, capsys)
    assert code == 1 and "keys.yaml" in err
