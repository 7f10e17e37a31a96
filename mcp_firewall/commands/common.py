"""What several commands need: the configuration, the compiled policy, and usage errors."""

from __future__ import annotations

import argparse
import os

from mcp_firewall.config.loader import LoadedConfig, load_firewall_file
from mcp_firewall.policy.compile import Policy, compile_policy

__all__ = ["UsageError", "add_call_arguments", "add_config_argument", "load_config", "load_policy_of"]


class UsageError(Exception):
    """A command line that cannot be acted on; `mcp-firewall` exits 2."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("MCP_FIREWALL_CONFIG", "firewall.yaml"),
        help="the firewall file (default: MCP_FIREWALL_CONFIG, then ./firewall.yaml)",
    )


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """`--agent`, `--tool`, `--args` and `--config`: one tool call to decide (`check`, `explain`)."""
    parser.add_argument("--agent", required=True, help="the agent making the call")
    parser.add_argument("--tool", required=True, help="the tool as agents see it, e.g. files__read_text_file")
    parser.add_argument("--args", default="{}", metavar="JSON", help="the call's arguments, a JSON object")
    add_config_argument(parser)


def load_config(path: str) -> LoadedConfig:
    if not os.path.exists(path):
        raise UsageError(f"no firewall file at {path!r} (pass --config FILE or set MCP_FIREWALL_CONFIG)")
    return load_firewall_file(path)


def load_policy_of(config: LoadedConfig) -> Policy:
    return compile_policy(config.policy, upstreams=config.firewall.upstreams, environment=config.firewall.environment)
