"""The terminal view of a goal run: one table of subtasks, redrawn as Prefect reports changes."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from core.progress import ProgressDocument

STATE_STYLE = {
    "Completed": "green",
    "Cached": "green",
    "Running": "bold yellow",
    "Retrying": "yellow",
    "Failed": "bold red",
    "Crashed": "bold red",
    "Skipped": "magenta",
    "Cancelled": "dim red",
    "Cancelling": "red",
}


def _duration(doc_start: datetime | None, end: datetime | None) -> str:
    if doc_start is None:
        return ""
    seconds = ((end or datetime.now(UTC)) - doc_start).total_seconds()
    return f"{seconds:5.1f}s"


def render(doc: ProgressDocument) -> RenderableType:
    badge = (
        Text(" SIMULATED ", style="bold black on yellow")
        if doc.provider == "simulated"
        else Text("")
    )
    state = Text(doc.state, style=STATE_STYLE.get(doc.state, "cyan"))
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
        (f"  ${doc.usage.cost_usd:.4f}, {tokens} tokens", "dim"),
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
        table.add_row(
            s.id,
            s.tier,
            s.model or "",
            Text(s.state, style=STATE_STYLE.get(s.state, "dim")),
            _duration(s.started_at, s.ended_at),
            Text(note, style="red" if s.error else ""),
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
