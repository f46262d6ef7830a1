"""The Mission Control page at /tasks: submit goals and watch goal runs live, behind the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader

from api.auth import Principal, csrf_token_for, page_user

# Browser pages, not part of the REST API's OpenAPI schema.
router = APIRouter(tags=["pages"], include_in_schema=False)

PageUserDep = Annotated[Principal | None, Depends(page_user)]

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=True
)


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", status_code=303)


def _page(
    request: Request, user: Principal, run_id: str = "", notice: str = "", status_code: int = 200
) -> HTMLResponse:
    """The page; its script reads the run to open and the CSRF token from the markup."""
    html = _templates.get_template("tasks.html").render(
        csrf_token=csrf_token_for(request),
        run_id=run_id,
        notice=notice,
        can_log_out=user.kind == "session",
    )
    return HTMLResponse(html, status_code=status_code)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/tasks", status_code=303)


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(request: Request, user: PageUserDep) -> Response:
    """The submit form and the history of goal runs."""
    if user is None:
        return _to_login(request)
    return _page(request, user)


@router.get("/tasks/{flow_run_id}", response_class=HTMLResponse)
async def goal_run_page(flow_run_id: str, request: Request, user: PageUserDep) -> Response:
    """The same page, opened on one goal run's live view."""
    if user is None:
        return _to_login(request)
    try:
        run_id = str(UUID(flow_run_id))
    except ValueError:
        notice = "That address does not name a goal run: a goal run id is a full UUID."
        return _page(request, user, notice=notice, status_code=404)
    return _page(request, user, run_id=run_id)
