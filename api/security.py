"""Security headers on every response, added by a pure ASGI middleware that never buffers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_CSP = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
# Swagger UI loads its assets from jsDelivr and boots with an inline script.
DOCS_CSP = (
    STRICT_CSP + "; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' https://fastapi.tiangolo.com data:"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
_DEFERRED = "mission.deferred_headers"


def defer_header(request: Request, name: str, value: str) -> None:
    """Add a header to this request's response whatever the route returns (e.g. a stream)."""
    request.scope.setdefault(_DEFERRED, []).append((name, value))


class SecurityHeaders:
    """Sets the headers on `http.response.start` and passes the body through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                csp = DOCS_CSP if scope["path"] in DOCS_PATHS else STRICT_CSP
                headers["content-security-policy"] = csp
                for name, value in HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
                for name, value in scope.get(_DEFERRED, ()):
                    headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)
