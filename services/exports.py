"""A goal run's result as files that leave the page: Markdown with its Sources list, and a
PDF rendered from that Markdown (fpdf2, with a TrueType font so any text renders)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import font_roboto
from fpdf import FPDF, FontFace
from markdown_it import MarkdownIt
from prefect.client.orchestration import PrefectClient

from core.citations import sources_list
from services import prefect_reads
from services.goal_runs import WrongState
from services.progress import read_goal_run, read_stored

FONT = "roboto"
_FONT_FILES = Path(font_roboto.__file__).parent / "files"
# Model-written text is untrusted: raw HTML stays text, and images are not rendered (fpdf2
# would fetch an image's URL from the API process, a request the SSRF guard never saw).
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")
_SLUG_MAX = 60


class NoResultYet(WrongState):
    """The goal run has not written its result yet."""


@dataclass(frozen=True)
class ResultFile:
    """A goal run's result as a Markdown document, and the name its files are given."""

    flow_run_id: UUID
    goal: str
    markdown: str

    @property
    def stem(self) -> str:
        return f"{slug(self.goal)}-{str(self.flow_run_id)[:8]}"


def slug(goal: str) -> str:
    """A file name from a goal: ASCII letters, digits and hyphens, at most 60 characters."""
    ascii_text = unicodedata.normalize("NFKD", goal).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:_SLUG_MAX].rstrip("-") or "goal"


def attachment(filename: str) -> dict[str, str]:
    """The header that makes a browser save the response as `filename` (already ASCII)."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


async def read_result(client: PrefectClient, flow_run_id: UUID) -> ResultFile:
    """The goal run's answer under its goal as a heading, ending with its Sources list (the
    join appends it; a cancelled run's note gets one here). NoResultYet before the result."""
    flow_run = await read_goal_run(client, flow_run_id)
    stored = read_stored(await prefect_reads.artifacts(client, flow_run.id), flow_run.run_count)
    if stored.result is None:
        state = flow_run.state.name if flow_run.state is not None else "Pending"
        raise NoResultYet(f"goal run {flow_run.id} has no result yet (it is {state})")
    goal = " ".join(str(flow_run.parameters.get("goal", "")).split()) or "Goal"
    body = stored.result.strip()
    listed = sources_list(stored.sources.values())
    if listed and "## Sources" not in body:
        body = f"{body}\n\n{listed}"
    return ResultFile(flow_run.id, goal, f"# {goal}\n\n{body}\n")


def render_pdf(result: ResultFile) -> bytes:
    """The result's Markdown as a PDF: headings, lists, links, code and quotes."""
    pdf = FPDF(format="A4")
    pdf.set_title(result.goal)
    pdf.set_creator("Mission Control")
    for style, name in (("", "Regular"), ("B", "Bold"), ("I", "Italic"), ("BI", "BoldItalic")):
        pdf.add_font(FONT, style, str(_FONT_FILES / f"Roboto-{name}.ttf"))
    pdf.set_margins(18, 18, 18)
    pdf.add_page()
    pdf.set_font(FONT, size=11)
    code = FontFace(family=FONT, color=(90, 40, 20))
    pdf.write_html(
        _MARKDOWN.render(result.markdown),
        font_family=FONT,
        tag_styles={"code": code, "pre": code},
    )
    return bytes(pdf.output())
