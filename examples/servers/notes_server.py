"""A small, realistic upstream MCP server: a folder of plain-text notes.

It is the upstream that the mcp-firewall examples, tests and demo put behind the
firewall. It is written with the official SDK (`MCPServer`, the 2.x name of
FastMCP) and annotates every tool honestly, so a policy can key on the hints:

    read         list_notes, read_note, search_notes, slow_count
    write        create_note, append_note
    destructive  delete_note, overwrite_note
    interactive  ask_user (elicitation), summarize (sampling)

plus the resources `notes://index` and `notes://{name}` and the prompt `review_note`.

Run it over stdio (the default) or HTTP, always bound to 127.0.0.1:

    python examples/servers/notes_server.py --root DIR
    python examples/servers/notes_server.py --root DIR --transport streamable-http --port 8765   # /mcp
    python examples/servers/notes_server.py --root DIR --transport sse --port 8766               # /sse
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import CreateMessageResult, SamplingMessage, TextContent, ToolAnnotations
from pydantic import BaseModel

NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")

# Honest annotations: what each kind of tool really does to the notes folder.
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
INTERACTIVE = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=True)

# Log messages are deprecated in the 2026-07-28 protocol but still sent to 2025-11-25 clients; keep stderr quiet.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

mcp = MCPServer(
    "notes",
    version="1.0.0",
    instructions="A folder of plain-text notes. Note names match [A-Za-z0-9._-]+.",
    log_level="WARNING",
)
ROOT = Path(tempfile.gettempdir())  # replaced in main() by --root


def note_path(name: str) -> Path:
    """Map a note name to its file, refusing anything that could leave ROOT."""
    if not NAME_RE.fullmatch(name) or name in {".", ".."}:
        raise ToolError(f"invalid note name {name!r}: use letters, digits, '.', '_' and '-' only")
    return ROOT / name


def existing(name: str) -> Path:
    path = note_path(name)
    if not path.is_file() or path.is_symlink():  # a planted symlink could point outside ROOT
        raise ToolError(f"no such note: {name}")
    return path


# --- read tools ---------------------------------------------------------------------------------


@mcp.tool(annotations=READ)
def list_notes() -> list[str]:
    """List the names of all notes."""
    return sorted(p.name for p in ROOT.iterdir() if p.is_file() and NAME_RE.fullmatch(p.name))


@mcp.tool(annotations=READ)
def read_note(name: str) -> str:
    """Return the text of one note."""
    return existing(name).read_text(encoding="utf-8")


@mcp.tool(annotations=READ)
def search_notes(query: str) -> list[str]:
    """Names of notes whose text contains `query` (case-insensitive)."""
    q = query.lower()
    return [n for n in list_notes() if q in (ROOT / n).read_text(encoding="utf-8").lower()]


# --- write tools --------------------------------------------------------------------------------


@mcp.tool(annotations=WRITE)
def create_note(name: str, text: str) -> str:
    """Create a new note; fails if it already exists."""
    path = note_path(name)
    if path.exists():
        raise ToolError(f"note already exists: {name}")
    path.write_text(text, encoding="utf-8")
    return f"created {name} ({len(text)} chars)"


@mcp.tool(annotations=WRITE)
def append_note(name: str, text: str) -> str:
    """Append text to an existing note."""
    with existing(name).open("a", encoding="utf-8") as f:
        f.write(text)
    return f"appended {len(text)} chars to {name}"


# --- destructive tools --------------------------------------------------------------------------


@mcp.tool(annotations=DESTRUCTIVE)
def delete_note(name: str) -> str:
    """Delete a note."""
    existing(name).unlink()
    return f"deleted {name}"


@mcp.tool(annotations=DESTRUCTIVE)
def overwrite_note(name: str, text: str) -> str:
    """Replace the whole text of a note (creating it if needed)."""
    note_path(name).write_text(text, encoding="utf-8")
    return f"overwrote {name} ({len(text)} chars)"


# --- progress and logging -----------------------------------------------------------------------


@mcp.tool(annotations=READ)
async def slow_count(n: int, delay_ms: int, ctx: Context) -> str:
    """Count to n, sleeping delay_ms per step and reporting progress after each one."""
    await ctx.info(f"counting to {n}")
    for i in range(1, n + 1):
        await anyio.sleep(delay_ms / 1000)
        await ctx.report_progress(i, n, f"step {i}/{n}")
    return f"counted to {n}"


# --- elicitation and sampling -------------------------------------------------------------------
# A `Resolve(...)` resolver may return an `Elicit` or `Sample` marker; the SDK then asks the client
# in whatever way the negotiated protocol allows (a server->client request on 2025-11-25, an
# InputRequiredResult round trip on 2026-07-28) and injects the answer into the tool.


class Answer(BaseModel):
    answer: str


def ask(question: str) -> Elicit[Answer]:
    return Elicit(question, Answer)


@mcp.tool(annotations=INTERACTIVE)
def ask_user(question: str, reply: Annotated[ElicitationResult[Answer], Resolve(ask)]) -> str:
    """Ask the human a question (elicitation) and return the answer."""
    if reply.action == "accept":
        return f"user answered: {reply.data.answer}"
    return f"user chose to {reply.action}"


def sample_summary(text: str) -> Sample:
    prompt = SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarize in one line:\n{text}"))
    return Sample([prompt], max_tokens=100, system_prompt="You summarize notes.")


@mcp.tool(annotations=INTERACTIVE)
def summarize(text: str, summary: Annotated[CreateMessageResult, Resolve(sample_summary)]) -> str:
    """Summarize text with the client's LLM (sampling)."""
    content = summary.content
    return content.text if isinstance(content, TextContent) else f"<{content.type} content>"


# --- resources and prompts ----------------------------------------------------------------------


@mcp.resource("notes://index", mime_type="text/plain")
def index() -> str:
    """One note name per line."""
    return "\n".join(list_notes())


@mcp.resource("notes://{name}", mime_type="text/plain")
def note_resource(name: str) -> str:
    """The text of one note."""
    return read_note(name)


@mcp.prompt()
def review_note(name: str) -> str:
    """Ask the model to review a note."""
    return f"Review the note {name!r} below for clarity and mistakes.\n\n{read_note(name)}"


def main(argv: list[str] | None = None) -> None:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="notes folder (default: a new temp dir)")
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    ROOT = (args.root or Path(tempfile.mkdtemp(prefix="notes-"))).resolve()
    ROOT.mkdir(parents=True, exist_ok=True)
    if args.transport == "stdio":
        mcp.run()
        return
    path = "/sse" if args.transport == "sse" else "/mcp"
    print(f"notes server: {ROOT} on http://127.0.0.1:{args.port}{path}", file=sys.stderr, flush=True)
    if args.transport == "sse":
        mcp.run("sse", host="127.0.0.1", port=args.port)
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
