"""The login page, login and logout: how a browser gets and ends a session."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import CSRF_REFUSED, csrf_ok, current_session, end_session, gate_of, is_secure

# Browser pages (HTML forms, redirects), not part of the REST API's OpenAPI schema.
router = APIRouter(tags=["session"], include_in_schema=False)

LOGIN_CSRF_COOKIE = "mission_login_csrf"
DEFAULT_NEXT = "/tasks"
WRONG_PASSWORD = "wrong password"
FORM_EXPIRED = "the login form expired; reload the page and try again"

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=True
)


def safe_next(value: object) -> str:
    """`value` when it is a path on this site, else /tasks: never an open redirect."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil" means "//evil".
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 2048
    ):
        return value
    return DEFAULT_NEXT


def _login_page(
    request: Request,
    next_path: str,
    *,
    status_code: int = 200,
    message: str = "",
    token: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The form, with a double-submit token: the same value in a cookie and a hidden field."""
    token = token or secrets.token_urlsafe(24)
    html = _templates.get_template("login.html").render(
        message=message, csrf_token=token, next=next_path
    )
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=is_secure(request),
    )
    return response


async def _read_form(request: Request) -> FormData:
    """The login form; a malformed or oversized body reads as an empty form, never a 4xx/500."""
    try:
        return await request.form(max_files=0, max_fields=20, max_part_size=64 * 1024)
    except StarletteHTTPException:
        return FormData()


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if gate_of(request).open:  # nothing to log in to
        return RedirectResponse(next_path, status_code=303)
    # Reuse the token of an earlier visit so two open login tabs both still work.
    earlier = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return _login_page(request, next_path, token=earlier if 16 <= len(earlier) <= 64 else "")


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    gate = gate_of(request)
    form = await _read_form(request)
    next_path = safe_next(form.get("next"))
    if gate.open:
        return RedirectResponse(next_path, status_code=303)

    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    supplied = form.get("csrf_token")
    if not (
        expected
        and isinstance(supplied, str)
        and hmac.compare_digest(supplied.encode(), expected.encode())
    ):
        return _login_page(request, next_path, status_code=403, message=FORM_EXPIRED)

    client = request.client.host if request.client else "unknown"
    wait = gate.throttle.attempt(client)
    if wait is not None:
        return _login_page(
            request,
            next_path,
            status_code=429,
            message=f"too many failed logins; try again in {wait} s",
            token=expected,
            headers={"Retry-After": str(wait)},
        )

    password = form.get("password")
    # Same answer for a wrong, empty or missing password: the reply tells an attacker nothing.
    if not await run_in_threadpool(
        gate.check_password, password if isinstance(password, str) else ""
    ):
        return _login_page(
            request, next_path, status_code=401, message=WRONG_PASSWORD, token=expected
        )

    gate.throttle.forget(client)
    response = RedirectResponse(next_path, status_code=303)
    response.headers.append(
        "set-cookie", gate.session_cookie(gate.new_session(), is_secure(request))
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on the server (a copy of its cookie stops working, on every replica)
    and clear the cookie; with a live session, only when its CSRF token comes along."""
    session = current_session(request, refresh=False)
    if session is not None:
        if not await csrf_ok(request, session.csrf):
            raise HTTPException(403, CSRF_REFUSED)
        await end_session(request, session)
    response = RedirectResponse("/login", status_code=303)
    response.headers.append("set-cookie", gate_of(request).session_cookie(None, is_secure(request)))
    return response
