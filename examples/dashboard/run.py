"""`make demo-dashboard`: Arize Phoenix on 127.0.0.1, the demo agents through the firewall, spans in Phoenix.

    .venv/bin/python examples/dashboard/run.py [--phoenix .venv-phoenix/bin/phoenix] [--screenshot FILE] [--exit]

Starts Phoenix (its own venv: it is large) bound to 127.0.0.1:6006, runs the three example agents with
the firewall exporting OTLP to it, prints the URL of the trace list, and keeps Phoenix running until
Ctrl-C. `--screenshot FILE` also saves a picture of a trace with an allowed and a denied call (headless
Chromium), and `--exit` stops Phoenix afterwards. Phoenix's gRPC receiver (4317) binds every interface
whatever PHOENIX_HOST says; nothing here sends to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROJECT = "mcp-firewall-demo"
BASE = "http://127.0.0.1:6006"
AGENTS = ["sdk_agent.py", "pydantic_ai_agent.py", "openai_agents_agent.py"]


def _get(path: str) -> Any:
    with urllib.request.urlopen(BASE + path, timeout=5) as response:  # loopback only
        return json.load(response)


def _graphql(query: str) -> Any:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(BASE + "/graphql", body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:  # loopback only
        return json.load(response)


def start_phoenix(phoenix: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": "6006",
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen([phoenix, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            _get("/v1/projects")
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"Phoenix exited; see {workdir / 'phoenix.log'}") from None
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("Phoenix did not answer within 90 s")


def run_agents() -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MCP_FIREWALL_CONFIG": str(REPO / "examples/dashboard/firewall.yaml"),
        "MCP_FIREWALL_EXAMPLES": str(REPO / "examples"),
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}",
        "NOTES_ROOT": str(REPO / ".demo/dashboard-notes"),
    }
    shutil.rmtree(REPO / ".demo/dashboard-notes", ignore_errors=True)
    for agent in AGENTS:
        print(f"== {agent}", flush=True)
        subprocess.run([sys.executable, str(REPO / "examples/agents" / agent)], env=env, check=True, timeout=120)


def find_denied_trace() -> tuple[str, str, str] | None:
    """(project id, trace id, span global id) of a trace holding a denied call, or None."""
    projects = {p["name"]: p["id"] for p in _get("/v1/projects")["data"]}
    project_id = projects.get(PROJECT)
    if project_id is None:
        return None
    spans = _get(f"/v1/projects/{PROJECT}/spans?limit=500")["data"]
    for span in spans:
        if span.get("attributes", {}).get("mcp_firewall.decision") == "deny":
            trace_id = span["context"]["trace_id"]
            span_id = span["context"]["span_id"]
            query = (
                f'{{ node(id: "{project_id}") {{ ... on Project {{ trace(traceId: "{trace_id}") '
                "{ spans(first: 100) { edges { node { id spanId } } } } } } }"
            )
            edges = _graphql(query)["data"]["node"]["trace"]["spans"]["edges"]
            node_id = next((e["node"]["id"] for e in edges if e["node"]["spanId"] == span_id), "")
            return project_id, trace_id, node_id
    return None


def screenshot(url: str, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1600,1000",
            "--virtual-time-budget=15000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phoenix", default=str(REPO / ".venv-phoenix/bin/phoenix"))
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--exit", action="store_true", help="stop Phoenix when done")
    args = parser.parse_args()
    workdir = REPO / ".phoenix"
    workdir.mkdir(exist_ok=True)
    (REPO / ".demo").mkdir(exist_ok=True)
    phoenix = start_phoenix(args.phoenix, workdir)
    try:
        run_agents()
        time.sleep(3)  # Phoenix ingests asynchronously
        found = find_denied_trace()
        if found is None:
            print("no denied call reached Phoenix yet; open the UI and look in project", PROJECT)
        else:
            project_id, trace_id, node_id = found
            url = f"{BASE}/projects/{project_id}/traces/{trace_id}?selectedSpanNodeId={node_id}"
            print(f"\nPhoenix: {BASE}/projects/{project_id}  (a trace with a denied call: {url})")
            if args.screenshot is not None:
                screenshot(url, args.screenshot)
                print(f"screenshot saved to {args.screenshot}")
        if not args.exit:
            print("Phoenix keeps running; Ctrl-C stops it.")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        phoenix.terminate()
        try:
            phoenix.wait(10)
        except subprocess.TimeoutExpired:
            phoenix.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
