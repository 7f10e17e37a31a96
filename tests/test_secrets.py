"""No secret leaves through telemetry: not in spans, metrics, log lines or audit records.

Secrets are planted where they really occur: in tool arguments (under secret-looking keys, and shaped
like credentials under ordinary ones, with `record_arguments` off and on, in allowed and in denied calls
whose reason would quote them), and in the firewall file's upstream `env` and `headers`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.harness import firewall
from support.servers import lowlevel, tool

from mcp_firewall.audit import AuditLog, chain_files, verify
from mcp_firewall.config.loader import load_scope_files
from mcp_firewall.policy.compile import Policy, compile_policy
from mcp_firewall.telemetry import REDACTED, Recorder, Redactor

pytestmark = pytest.mark.anyio
REPO_ROOT = Path(__file__).resolve().parents[1]

PASSWORD = "correct-horse-battery-staple"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudC03In0.Zm9yZ2VkLXNpZ25hdHVyZS1ieXRlcw"
OPENAI_KEY = "sk-proj-Q2x7Rk9mTzP4wVb8NcLd3YhJ"
GITHUB_TOKEN = "ghp_R8kLm2Qx7VbT9pZc4WnY6HsD1fGj3KaE5uIo"
AWS_KEY_ID = "AKIAZ7QX3RPL9MNB2KTW"
SLACK_TOKEN = "xoxb-2849271650-Yq8vT3nKp0Lr"
BEARER_VALUE = "v7Qp2LmX9rTz4KcW8nBy"
RANDOM_SECRET = "Hq3Zt8Vw2Rk9Lm4Px7Cn5Jb6Ys1Fd0Ga"  # no known prefix: caught as a high-entropy token
ENV_SECRET = "planted-env-secret-4f9c2e"
HEADER_SECRET = "planted-header-secret-8d1a7b"
ARGUMENT_SECRETS = (PASSWORD, JWT, OPENAI_KEY, GITHUB_TOKEN, AWS_KEY_ID, SLACK_TOKEN, BEARER_VALUE, RANDOM_SECRET)

SCOPES = """\
servers:
  vault:
    read: [login, strict]
scopes:
  user:
    allow:
      - tools: [vault__login, vault__strict]
agents:
  tester:
    scopes: [user]
"""
LOGIN = tool(
    "login",
    user={"type": "string"},
    password={"type": "string"},
    note={"type": "string"},
    options={"type": "object"},
    keys={"type": "array"},
)
STRICT = tool(
    "strict", pin={"type": "integer"}, client_secret={"type": "integer"}, note={"type": "string", "maxLength": 5}
)


def compiled(tmp_path: Path) -> Policy:
    path = tmp_path / "scopes.yaml"
    path.write_text(SCOPES, encoding="utf-8")
    return compile_policy(load_scope_files([path], upstreams=["vault"]), upstreams=["vault"])


def assert_no_secret(text: str, secrets: tuple[str, ...] = ARGUMENT_SECRETS) -> None:
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == [], f"leaked {leaked}"


@pytest.mark.parametrize("record_arguments", [False, True])
async def test_planted_argument_secrets_appear_in_no_span_metric_log_or_audit_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, record_arguments: bool
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    audit_path = tmp_path / "audit.jsonl"
    recorder = Recorder(
        tracer=provider.get_tracer("test"),
        meter=MeterProvider(metric_readers=[reader]).get_meter("test"),
        audit=AuditLog.open(audit_path, fsync="never"),
        record_arguments=record_arguments,
    )
    caplog.set_level(logging.DEBUG)
    async with firewall(
        {"vault": lowlevel([LOGIN, STRICT])},
        gate=compiled(tmp_path),
        agent="tester",
        session_options={"observer": recorder},
    ) as fw:
        allowed = {
            "user": "Ada Lovelace",
            "password": PASSWORD,
            "note": f"Authorization: Bearer {BEARER_VALUE}; backup key {OPENAI_KEY}; id {AWS_KEY_ID}",
            "options": {"session": JWT, "API_Key": RANDOM_SECRET, "depth": [{"slack": SLACK_TOKEN}]},
            "keys": [GITHUB_TOKEN, RANDOM_SECRET],
        }
        await fw.client.call_tool("vault__login", allowed, meta={"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
        # denied by the schema: the reason would quote the value that failed
        await fw.client.call_tool("vault__strict", {"client_secret": PASSWORD})
        await fw.client.call_tool("vault__strict", {"note": OPENAI_KEY})
        await fw.client.call_tool("vault__strict", {"pin": GITHUB_TOKEN})
        assert len(fw.recorders["vault"].calls()) == 1
    recorder.shutdown()
    exported = [span.to_json() for span in spans.get_finished_spans()]
    metrics = reader.get_metrics_data()
    assert metrics is not None
    audit = audit_path.read_text(encoding="utf-8")
    for text in (*exported, metrics.to_json(), audit, caplog.text):
        assert_no_secret(text)
    denied = [json.loads(line) for line in audit.splitlines() if json.loads(line).get("decision") == "deny"]
    assert len(denied) == 3 and all(REDACTED in record["reason"] for record in denied)
    if record_arguments:
        [server] = [s for s in spans.get_finished_spans() if s.name == "tools/call vault__login"]
        recorded = json.loads(str((server.attributes or {})["mcp_firewall.arguments"]))
        assert recorded["user"] == "Ada Lovelace" and recorded["password"] == REDACTED
        assert recorded["options"]["API_Key"] == REDACTED
        assert recorded["note"].startswith("Authorization: ") and "backup key" in recorded["note"]
        assert json.loads(audit.splitlines()[0])["args"] == recorded
    else:
        assert "mcp_firewall.arguments" not in "".join(exported)
        assert '"args"' not in audit
        assert "Ada Lovelace" not in "".join(exported) + audit  # no argument value at all, secret or not


@pytest.mark.parametrize(
    "text",
    [
        f"Bearer {BEARER_VALUE}",
        f"curl -H 'Authorization: Basic {BEARER_VALUE}' https://api",
        JWT,
        f"key={OPENAI_KEY}",
        GITHUB_TOKEN,
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        AWS_KEY_ID,
        SLACK_TOKEN,
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "https://deploy:hunter2hunter2@git.example.com/repo.git",
        '{"password": "hunter2hunter2"}',
        "export API_KEY=abcd1234efgh",
        "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9d4c3b2a1",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
        RANDOM_SECRET,
    ],
)
def test_credential_shaped_text_is_redacted(text: str) -> None:
    redacted = Redactor().text(text)
    assert REDACTED in redacted
    for secret in (BEARER_VALUE, JWT, OPENAI_KEY, GITHUB_TOKEN, AWS_KEY_ID, SLACK_TOKEN, RANDOM_SECRET, "hunter2"):
        assert secret not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "/srv/docs/drafts/2026-report.md",
        "/home/user/Projects/myRepo123/src/components/Button.tsx",
        "The token limit is 4096; see https://example.com/docs?page=2",
        "ThisIsAVeryLongCamelCaseIdentifierName1",
        "SELECT * FROM users WHERE id = 42",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_secret_keys_match_case_insensitively_by_substring() -> None:
    redactor = Redactor(["password", "api_key"])
    value = {"DB_Password": 1, "x-api_key": ["a"], "passwd": "kept", "nested": {"old_password": {"a": 1}}}
    assert redactor.arguments(value) == {
        "DB_Password": REDACTED,
        "x-api_key": REDACTED,
        "passwd": "kept",
        "nested": {"old_password": REDACTED},
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


FIREWALL = """\
upstreams:
  echo:
    command: {python}
    args: ["{echo}"]
    env: {{ECHO_API_TOKEN: "${{PLANTED_ENV_SECRET}}"}}
    timeout_s: 10
  tickets:
    url: http://127.0.0.1:{port}/mcp
    headers: {{Authorization: "Bearer ${{PLANTED_HEADER_SECRET}}"}}
    timeout_s: 2
scopes: [scopes.yaml]
audit: {{path: audit.jsonl, fsync: always}}
telemetry: {{exporter: jsonl, path: spans.jsonl, record_arguments: true}}
"""


@pytest.mark.slow
async def test_the_running_firewall_never_exports_upstream_credentials_or_argument_secrets(tmp_path: Path) -> None:
    """`mcp-firewall run` itself: config with credentials in env and headers, spans to a file, audit on."""
    (tmp_path / "firewall.yaml").write_text(
        FIREWALL.format(python=sys.executable, echo=REPO_ROOT / "examples/servers/echo_server.py", port=_closed_port()),
        encoding="utf-8",
    )
    scopes = "servers:\n  echo:\n    read: [echo]\nagents:\n  tester:\n    scopes: [echo:read]\n"
    (tmp_path / "scopes.yaml").write_text(scopes, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "MCP_FIREWALL_"))}
    env.update(PLANTED_ENV_SECRET=ENV_SECRET, PLANTED_HEADER_SECRET=HEADER_SECRET)
    command = [sys.executable, "-m", "mcp_firewall", "--log-level", "info", "run", "--config", "firewall.yaml"]
    params = StdioServerParameters(
        command=command[0], args=[*command[1:], "--agent", "tester"], env=env, cwd=str(tmp_path)
    )
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=20) as client:
            result = await client.call_tool("echo__echo", {"text": f"deploy with {GITHUB_TOKEN} and {JWT}"})
            assert not result.is_error
            denied = await client.call_tool("echo__echo", {"text": 1, "password": PASSWORD})
            assert denied.is_error
    spans = (tmp_path / "spans.jsonl").read_text(encoding="utf-8")
    audit = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    stderr = stderr_path.read_text(encoding="utf-8")
    assert "tools/call echo__echo" in spans and '"decision":"allow"' in audit
    for text in (spans, audit, stderr):
        assert_no_secret(text, (*ARGUMENT_SECRETS, ENV_SECRET, HEADER_SECRET))
    recorded = [json.loads(line) for line in audit.splitlines()]
    assert recorded[0]["args"] == {"text": f"deploy with {REDACTED} and {REDACTED}"}
    assert [r["kind"] for r in recorded] == ["decision", "outcome", "decision"]
    assert verify(chain_files(tmp_path / "audit.jsonl")).ok
    exported = [json.loads(line) for line in spans.splitlines()]
    hashes = {span["attributes"].get("mcp_firewall.audit.hash") for span in exported if "context" in span}
    assert {recorded[0]["hash"], recorded[2]["hash"]} <= hashes  # exported spans anchor the chain
