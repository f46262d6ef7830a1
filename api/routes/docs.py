"""The API's description (`/openapi.json`) and its Swagger UI (`/docs`), behind the same gate
as the API: a bearer token or a logged-in session (the page's user opens /docs with the
session cookie, and Swagger UI fetches the description with it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import UserDep, page_user

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
async def openapi(request: Request, user: UserDep) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get(DOCS_URL, response_class=HTMLResponse)
async def docs(request: Request) -> Response:
    if await page_user(request) is None:
        return RedirectResponse(f"/login?{urlencode({'next': DOCS_URL})}", status_code=303)
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - API")
