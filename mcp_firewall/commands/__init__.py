"""Subcommands of `mcp-firewall` beyond `run` and `validate`, one module each.

Each module exposes `register(commands)` that adds its parser(s) to the `argparse` subparsers and sets
`command=<function(args) -> exit code>`; `cli.py` lists the modules in `COMMAND_MODULES`.
Helpers shared by commands (loading the configuration, resolving the agent) live in `common.py`.
"""
