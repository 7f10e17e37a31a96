"""mcp-firewall: one MCP server in front of many, showing each agent only what its scopes grant."""

__version__ = "0.1.0"
__all__ = ["__version__"]
