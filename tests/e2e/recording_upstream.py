"""Run an upstream MCP server and record what it receives, so tests can prove a denied call reached nobody.

    python recording_upstream.py COMMAND [ARG...]

Environment (all optional; the firewall passes them through the upstream's `env:`):

- ``MCP_E2E_STDIN_LOG``: every line the upstream receives on stdin is appended here, byte for byte,
  *before* the upstream sees it.
- ``MCP_E2E_STDOUT_LOG``: every line the upstream writes on stdout is appended here too.
- ``MCP_E2E_PID_FILE``: ``<wrapper pid> <upstream pid>`` is appended here once the upstream started,
  so tests can check that no process outlives the firewall.

The wrapper is transparent: it forwards stdin and stdout unchanged, passes SIGTERM/SIGINT on, closes the
upstream's stdin when its own closes, and exits with the upstream's exit status as soon as it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO


def _open_log(variable: str) -> IO[bytes] | None:
    path = os.environ.get(variable)
    return open(path, "ab", buffering=0) if path else None


def _pump(source: IO[bytes], sink: IO[bytes], log: IO[bytes] | None) -> None:
    try:
        for line in iter(source.readline, b""):
            if log is not None:
                log.write(line)
            sink.write(line)
            sink.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        try:
            sink.close()
        except OSError:
            pass


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: recording_upstream.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    stdin_log = _open_log("MCP_E2E_STDIN_LOG")
    stdout_log = _open_log("MCP_E2E_STDOUT_LOG")
    child = subprocess.Popen(
        sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE if stdout_log is not None else None
    )
    if pid_file := os.environ.get("MCP_E2E_PID_FILE"):
        with open(pid_file, "a", encoding="utf-8") as pids:
            pids.write(f"{os.getpid()} {child.pid}\n")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    assert child.stdin is not None
    threading.Thread(target=_pump, args=(sys.stdin.buffer, child.stdin, stdin_log), daemon=True).start()
    relay = None
    if child.stdout is not None:
        relay = threading.Thread(target=_pump, args=(child.stdout, sys.stdout.buffer, stdout_log), daemon=True)
        relay.start()
    code = child.wait()
    if relay is not None:
        relay.join(timeout=2)  # the upstream's last words still reach the firewall
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    sys.exit(main())
