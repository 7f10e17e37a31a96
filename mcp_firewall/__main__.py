from mcp_firewall.cli import main

raise SystemExit(main())
