"""The terminal view of a goal run: one table of subtasks, redrawn as Prefect reports changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from core.pricing import cost_text
from core.progress import ProgressDocument

# By bucket (core.states): the document says which bucket each state is in.
BUCKET_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim red",
    "skipped": "magenta",
}


def _duration(doc_start: datetime | None, end: datetime | None) -> str:
    if doc_start is None:
        return ""
    seconds = ((end or datetime.now(UTC)) - doc_start).total_seconds()
    return f"{seconds:5.1f}s"


def last_line(text: str, limit: int = 100) -> str:
    """The last non-empty line of a subtask's streamed text, cut to `limit` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else "…" + line[-(limit - 1) :]


class LiveView:
    """What `mission run` redraws: the latest document, with the last line each running
    subtask's model has written (kept current by its deltas, between documents)."""

    def __init__(self) -> None:
        self.doc: ProgressDocument | None = None
        self.streamed: dict[str, str] = {}

    def add(self, subtask: str, text: str, restart: bool) -> None:
        self.streamed[subtask] = text if restart else self.streamed.get(subtask, "") + text

    def __rich__(self) -> RenderableType:
        return render(self.doc, self.streamed) if self.doc else Text("starting…", style="dim")


def render(doc: ProgressDocument, streamed: Mapping[str, str] | None = None) -> RenderableType:
    badge = (
        Text(" SIMULATED ", style="bold black on yellow")
        if doc.provider == "simulated"
        else Text("")
    )
    state = Text(doc.state, style=BUCKET_STYLE[doc.bucket])
    c = doc.counts
    tokens = doc.usage.input_tokens + doc.usage.output_tokens
    header = Text.assemble(
        badge,
        " " if doc.provider == "simulated" else "",
        ("goal run ", "dim"),
        (doc.id, "bold"),
        "  ",
        state,
        (f"  {c.completed}/{c.total} done", "dim"),
        (f", {c.running} running" if c.running else "", "yellow"),
        (f", {c.failed} failed" if c.failed else "", "red"),
        (f", {c.skipped} skipped" if c.skipped else "", "magenta"),
        (f"  {cost_text(doc.usage.cost_usd)}, {tokens} tokens", "dim"),
        (f"  plan revision {doc.plan_revision}" if doc.plan_revision else "", "cyan"),
    )
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("subtask", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    table.add_column("model", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("state", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True, min_width=6)
    table.add_column("learned / error", overflow="fold", ratio=1, min_width=20)
    for s in doc.subtasks:
        note = s.error or s.learned or ""
        writing = (streamed or {}).get(s.id, "") if s.bucket == "running" and not note else ""
        shown = f"{s.state}, replaced by {s.replaced_by}" if s.replaced_by else s.state
        table.add_row(
            Text(f"+{s.id}" if s.revision else s.id, style="cyan" if s.revision else ""),
            s.tier,
            s.model or "",
            Text(shown, style="dim strike" if s.replaced_by else BUCKET_STYLE[s.bucket]),
            _duration(s.started_at, s.ended_at),
            Text(f"✎ {last_line(writing)}", style="dim italic")
            if writing
            else Text(note, style="red" if s.error else ""),
        )
    parts: list[RenderableType] = [header, Text(doc.goal, style="italic")]
    if doc.subtasks:
        parts.append(table)
    else:
        parts.append(Text("planning…", style="dim"))
    return Panel(Group(*parts), title="Mission Control", border_style="blue")


def render_final(doc: ProgressDocument) -> RenderableType:
    parts: list[RenderableType] = [render(doc)]
    if doc.result:
        parts.append(Panel(Markdown(doc.result), title="Result", border_style="green"))
    if doc.message and doc.state != "Completed":
        parts.append(Text(f"{doc.state}: {doc.message}", style="red"))
    parts.append(Text(f"Prefect UI: {doc.prefect_url}", style="dim"))
    return Group(*parts)
