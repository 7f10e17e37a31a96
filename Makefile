# mcp-firewall developer tasks (GNU make + bash).
#
#   make venv    .venv with -e .[dev,examples] and node_modules via npm ci (each redone only when
#                pyproject.toml / package-lock.json change)
#   make test    venv + lint + types + pytest        make demo    run the scripted SDK agent
#   make lint    ruff check + ruff format --check    make types   mypy (strict on mcp_firewall)
#   make fmt     ruff format + ruff check --fix      make bench   benchmarks/overhead.py
#   make conformance   the official MCP conformance suite, direct and through the firewall (docs/http.md)
#   make load    benchmarks/load_http.py --quick (50 agents over HTTP)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Only lint what exists (empty folders are not in git).
SRC := $(wildcard mcp_firewall tests examples benchmarks)

# Tests, demo and benchmarks find the venv's console scripts (mcp-server-time, mcp-firewall, python).
WITH_VENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

# Stamps named after the content hash of the file they install from.
PY_STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
NPM_LOCK := $(firstword $(wildcard package-lock.json) package.json)
NPM_STAMP := node_modules/.installed-$(shell sha256sum $(NPM_LOCK) | cut -c1-16)

# This machine's pip config lists mirror folders that may not exist; drop pip's warnings about them.
PIP_FILTER := { grep -v 'is ignored: it is neither a file nor a directory' || true; }

.PHONY: venv demo demo-dashboard lint types policy-test test bench fmt clean

venv: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: $(PYTHON) is older than 3.11 (set PYTHON=python3.11)" >&2; exit 1; }
	@test -x $(PY) || { echo "== creating $(VENV)"; env -u PYTHONWARNDEFAULTENCODING $(PYTHON) -m venv $(VENV); }
	@echo "== pip install -e .[dev,examples]"
	@env -u PYTHONWARNDEFAULTENCODING $(PY) -m pip install -q --disable-pip-version-check -e '.[dev,examples]' 2>&1 | $(PIP_FILTER)
	@rm -f $(VENV)/.installed-* && touch $@

$(NPM_STAMP):
	@command -v npm >/dev/null || { echo "error: npm not found (Node >= 20 is needed for the MCP peers)" >&2; exit 1; }
	@if [ -f package-lock.json ]; then echo "== npm ci"; npm ci --no-audit --no-fund --loglevel=error; \
		else echo "== npm install"; npm install --no-audit --no-fund --loglevel=error; fi
	@rm -f node_modules/.installed-* && touch $(NPM_STAMP)

# The demo's notes live in a fresh .demo/notes (NOTES_ROOT is read by examples/firewall.yaml).
# Until mcp_firewall.cli and examples/firewall.yaml exist, the demo talks to the notes server directly.
demo: venv
	@rm -rf .demo/notes && mkdir -p .demo/notes
	@export NOTES_ROOT="$(CURDIR)/.demo/notes" $(WITH_VENV); \
	if [ -f mcp_firewall/cli.py ] && [ -f examples/firewall.yaml ] || [ -n "$${MCP_FIREWALL_CMD:-}" ]; then \
		$(PY) examples/agents/sdk_agent.py; \
	else \
		echo "(firewall CLI not there yet: running against examples/servers/notes_server.py directly)"; \
		MCP_FIREWALL_CMD="$(PY) examples/servers/notes_server.py --root $$NOTES_ROOT" $(PY) examples/agents/sdk_agent.py; \
	fi

lint: venv
	@echo "== ruff"
	@$(VENV)/bin/ruff check -q $(SRC)
	@$(VENV)/bin/ruff format -q --check $(SRC)

types: venv
	@echo "== mypy"
	@env -u PYTHONWARNDEFAULTENCODING $(VENV)/bin/mypy

# The example scopes' policy tests (scopes/tests/), decided offline from the examples' tools.lock files.
policy-test: venv
	@echo "== mcp-firewall test"
	@$(WITH_VENV) $(VENV)/bin/mcp-firewall test scopes/tests/

test: venv lint types policy-test
	@echo "== pytest"
	@$(WITH_VENV) $(PY) -m pytest -q

# Arize Phoenix in its own venv (about 850 MB), bound to 127.0.0.1:6006; the demo agents export spans to it.
PHOENIX := .venv-phoenix/bin/phoenix
$(PHOENIX):
	@echo "== creating .venv-phoenix (arize-phoenix; about a minute)"
	@env -u PYTHONWARNDEFAULTENCODING $(PYTHON) -m venv .venv-phoenix
	@.venv-phoenix/bin/pip install -q --disable-pip-version-check arize-phoenix 2>&1 | $(PIP_FILTER)

demo-dashboard: venv $(PHOENIX)
	@$(WITH_VENV) $(PY) examples/dashboard/run.py --phoenix $(PHOENIX)

bench: venv
	@$(WITH_VENV) $(PY) benchmarks/overhead.py

# The suite and the Node 22 it needs live in tests/conformance/node (their own package.json and lock).
CONFORMANCE_NODE := tests/conformance/node
CONFORMANCE_STAMP := $(CONFORMANCE_NODE)/node_modules/.installed-$(shell sha256sum $(CONFORMANCE_NODE)/package-lock.json | cut -c1-16)

$(CONFORMANCE_STAMP):
	@command -v npm >/dev/null || { echo "error: npm not found (needed for @modelcontextprotocol/conformance)" >&2; exit 1; }
	@echo "== npm ci ($(CONFORMANCE_NODE))"
	@cd $(CONFORMANCE_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(CONFORMANCE_NODE)/node_modules/.installed-* && touch $@

conformance: venv $(CONFORMANCE_STAMP)
	@$(WITH_VENV) $(PY) -m pytest -q -s tests/conformance

load: venv
	@$(WITH_VENV) $(PY) benchmarks/load_http.py --quick

fmt: venv
	@$(VENV)/bin/ruff format -q $(SRC)
	@$(VENV)/bin/ruff check -q --fix $(SRC)

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist *.egg-info
