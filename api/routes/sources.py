"""What a goal run found and wrote, over REST: its sources (each with the text it was read
as, and a page's screenshot) and its result as files to download (Markdown and PDF)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response

from api.auth import UserDep
from api.deps import PrefectDep, SettingsDep
from api.schemas import ErrorBody
from core.artifacts import screenshot_path
from services.exports import attachment, read_result, render_pdf
from services.progress import SourceDetail, UnknownGoalRun, read_goal_run, read_source

router = APIRouter(
    prefix="/task",
    tags=["goals"],
    responses={
        401: {"model": ErrorBody, "description": "not authenticated"},
        404: {"model": ErrorBody, "description": "no such goal run or source"},
        422: {"model": ErrorBody, "description": "the request is invalid; the detail says why"},
        503: {"model": ErrorBody, "description": "the Prefect server is unreachable"},
    },
)
SourceId = Annotated[int, Path(ge=1, le=1_000_000)]
MARKDOWN = "text/markdown; charset=utf-8"
NO_RESULT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "the goal run has no result yet"}
}


@router.get("/{flow_run_id}/sources/{source_id}", response_model=SourceDetail)
async def source(
    flow_run_id: UUID,
    source_id: SourceId,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
) -> SourceDetail:
    """One source: where it came from, which subtask found it, when, and its text as read
    (what its citations were checked against)."""
    return await read_source(prefect, flow_run_id, source_id, settings.home)


@router.get(
    "/{flow_run_id}/sources/{source_id}/screenshot.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "the page as it was seen"}},
)
async def source_screenshot(
    flow_run_id: UUID,
    source_id: SourceId,
    user: UserDep,
    settings: SettingsDep,
    prefect: PrefectDep,
) -> Any:
    """The screenshot of a page source, as its browse subtask's model saw it (kept on the
    machine that ran the goal run: on the scale-out path it may not be readable here)."""
    await read_goal_run(prefect, flow_run_id)
    path = screenshot_path(settings.home, flow_run_id, source_id)
    if not path.is_file():
        raise UnknownGoalRun(f"no screenshot of source {source_id} is kept here")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/{flow_run_id}/result.md",
    response_class=Response,
    responses={
        200: {"content": {MARKDOWN: {}}, "description": "the result, as a file"},
        **NO_RESULT,
    },
)
async def result_markdown(flow_run_id: UUID, user: UserDep, prefect: PrefectDep) -> Any:
    """The goal run's answer as a Markdown file: its goal as the heading, its numbered Sources
    list at the end; named after the goal."""
    result = await read_result(prefect, flow_run_id)
    return Response(result.markdown, media_type=MARKDOWN, headers=attachment(f"{result.stem}.md"))


@router.get(
    "/{flow_run_id}/result.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the result as a PDF"},
        **NO_RESULT,
    },
)
async def result_pdf(flow_run_id: UUID, user: UserDep, prefect: PrefectDep) -> Any:
    """The same Markdown rendered as a PDF (headings, lists, links, code)."""
    result = await read_result(prefect, flow_run_id)
    pdf = await asyncio.to_thread(render_pdf, result)  # CPU work: off the event loop
    return Response(pdf, media_type="application/pdf", headers=attachment(f"{result.stem}.pdf"))
