"""The FastAPI app: routers, error handling, security headers and the Prefect client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import Gate
from api.deltas import DeltaBoard, RedisDeltas, listen_on_socket
from api.hub import ProgressHub
from api.limits import BodySizeLimit
from api.prefect_link import PrefectLink, PrefectUnreachable
from api.routes import docs, goals, pages, schedules, session, sources
from api.security import add_security_headers
from api.streams import StreamCounts
from core.errors import ConfigurationError, InvalidInput, MissionError
from core.settings import Settings, get_settings
from core.stream import delta_socket
from services.active_runs import ActiveRuns
from services.goal_runs import NotServed, WrongState
from services.progress import UnknownGoalRun
from services.schedules import UnknownSchedule

log = logging.getLogger(__name__)


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _try_again_soon(detail: str) -> JSONResponse:
    """503 for a Prefect server that is away or busy: the client may retry in a moment."""
    return _error(503, detail, {"Retry-After": "5"})


def _readable(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        if error.get("type") == "json_invalid":
            at = error.get("loc", ("body", 0))[-1]
            why = (error.get("ctx") or {}).get("error", "invalid")
            parts.append(f"the body is not valid JSON ({why} at character {int(at) + 1})")
            continue
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is malformed"


# What FastAPI says when a body fails to decode before JSON parsing even starts (invalid
# UTF-8) or nests deeper than Python's parser goes.
_UNREADABLE_BODY = "There was an error parsing the body"


def _add_error_handlers(app: FastAPI) -> None:
    # The most specific first: UnknownGoalRun, UnknownSchedule and WrongState are
    # InvalidInput too.
    @app.exception_handler(UnknownGoalRun)
    @app.exception_handler(UnknownSchedule)
    async def unknown(_: Request, exc: InvalidInput) -> JSONResponse:
        return _error(404, exc.message)

    @app.exception_handler(WrongState)
    async def wrong_state(_: Request, exc: WrongState) -> JSONResponse:
        return _error(409, exc.message)

    @app.exception_handler(InvalidInput)
    async def invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return _error(422, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
            return _error(
                400, "the body cannot be read as JSON: it is not valid UTF-8 or nests too deeply"
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _readable(exc))

    @app.exception_handler(NotServed)
    async def not_served(_: Request, exc: NotServed) -> JSONResponse:
        return _try_again_soon(exc.message)

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_: Request, exc: ConfigurationError) -> JSONResponse:
        return _error(503, exc.message)

    @app.exception_handler(httpx.TransportError)
    async def unreachable(_: Request, exc: httpx.TransportError) -> JSONResponse:
        return _try_again_soon(PrefectUnreachable.at(PREFECT_API_URL.value()).message)

    @app.exception_handler(PrefectUnreachable)
    async def known_unreachable(_: Request, exc: PrefectUnreachable) -> JSONResponse:
        return _try_again_soon(exc.message)

    @app.exception_handler(PrefectHTTPStatusError)
    async def prefect_failed(_: Request, exc: PrefectHTTPStatusError) -> JSONResponse:
        log.warning("Prefect answered %s", exc)
        if exc.response.status_code == 503:  # still busy after services.busy's retries
            return _try_again_soon("the Prefect server is busy; try again in a few seconds")
        return _error(503, f"the Prefect server failed ({exc.response.status_code})")

    @app.exception_handler(MissionError)
    async def other(_: Request, exc: MissionError) -> JSONResponse:
        log.error("unexpected error: %s", exc.message)
        return _error(500, exc.message)


@asynccontextmanager
async def streamed_output(settings: Settings) -> AsyncIterator[DeltaBoard]:
    """The board of streamed output, fed by Redis with MISSION_REDIS_URL, else by this
    machine's goal runs through the socket of this MISSION_HOME (api/deltas.py)."""
    if settings.redis_url is not None:
        channel = RedisDeltas(settings.redis_url.get_secret_value())
        channel.start()
        try:
            yield channel.board
        finally:
            await channel.close()
        return
    board = DeltaBoard()
    try:
        close = await listen_on_socket(board, settings.delta_socket or delta_socket(settings.home))
    except (OSError, MissionError) as exc:
        log.warning("streamed output is off: %s", exc)
        yield board
        return
    try:
        yield board
    finally:
        close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gate = Gate.from_settings(settings)  # refuses to start without a password

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with get_client() as client:
            app.state.prefect = client
            app.state.hub = ProgressHub(client)
            app.state.link = PrefectLink(str(client.api_url))
            app.state.writes = asyncio.Lock()
            app.state.active_runs = ActiveRuns()
            app.state.link.start()
            async with streamed_output(settings) as board:
                app.state.deltas = board
                yield
            await app.state.link.stop()
            await app.state.hub.close()

    app = FastAPI(
        title="Mission Control",
        summary="Hand a compound goal to a fleet of language models and watch it being done.",
        version="0.1.0",
        lifespan=lifespan,
        # The description and its UI are served behind the gate (api/routes/docs.py).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.gate = gate
    app.state.streams = StreamCounts()
    _add_error_handlers(app)
    app.include_router(goals.router)
    app.include_router(sources.router)
    app.include_router(schedules.router)
    app.include_router(session.router)
    app.include_router(pages.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.get("/health", tags=["service"])
    async def health(request: Request) -> dict[str, str]:
        """Liveness, without authentication; says whether the Prefect server answers (the
        API stays live while it does not, and answers 503 to what needs it)."""
        link: PrefectLink | None = getattr(request.app.state, "link", None)
        prefect = "up" if link is None or link.up else "unreachable"
        return {"status": "ok", "provider": settings.resolved_provider, "prefect": prefect}

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_security_headers(app)  # last, so it wraps everything (a 413 included)
    return app
