"""End-to-end tests: the real firewall process between real MCP clients and real servers."""
