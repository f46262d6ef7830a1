"""Browse subtasks' eyes: a guarded headless Chromium; the only module that imports Playwright.

Threading: subtasks run in threads of one process, and Playwright objects belong to the event
loop that made them. So one daemon thread per process runs an asyncio loop that owns the
Playwright driver and one Chromium; any thread hands it a page to see and waits for the
answer. Several subtasks browse at once (one browser context each) without sharing Playwright
objects across threads, and the browser starts once per process instead of once per page.

Safety: every request a page makes is checked twice against core.web_guard. `context.route`
refuses what the guard refuses with a clear reason before a connection exists; and the
context's only way out is a small proxy in this process that resolves each host itself,
checks every address, connects to the checked address (so DNS rebinding between the check
and the connection has nothing to rebind) and counts response bytes on the wire (so an
endless body is cut at the byte limit rather than read forever). Redirect hops, workers'
fetches and WebSockets that `route` may not see still pass through the proxy.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    FloatRect,
    Page,
    Playwright,
    Request,
    Route,
    ViewportSize,
    WebSocketRoute,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from core.errors import ConfigurationError, MissionError
from core.settings import Settings, get_settings
from core.stop import NEVER, GoalStopped, Stop
from core.web_guard import (
    DEFAULT_PORTS,
    SOCKET_SCHEMES,
    Allowlist,
    Blocked,
    check_url,
)
from tasks.guard_proxy import HEAD_LIMIT, PROXY_HEADER, serve_connection

T = TypeVar("T")

VIEWPORT = ViewportSize(width=1280, height=800)  # both edges within the model's 1568 px
MAX_EDGE = 1568
SETTLE_S = 2.0  # after DOMContentLoaded: the most we wait for `load` and then for quiet
QUIET_S = 0.25  # "settled": no request of the page in flight for this long
CLOSE_S = 5.0  # how long closing a context or the browser may take before we stop waiting
LAUNCH_S = 30.0
MAX_LINKS = 100
LINK_TEXT_CHARS = 200
CHROMIUM_ARGS = [
    "--no-sandbox",  # workers run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",  # QUIC (UDP) would not go through the proxy
    # WebRTC may only use TCP through the proxy, so it cannot reach addresses directly.
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
]
# Belt and braces for the policy above: pages get no WebRTC to try with.
NO_WEBRTC = """for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection",
  "RTCDataChannel", "WebTransport"]) { try { delete window[name]; } catch (e) {} }"""
# Capped in the page, so a page cannot hand back more than we keep.
PAGE_TEXT_JS = "(max) => (document.body ? document.body.innerText : '').slice(0, max)"
PAGE_HEIGHT_JS = """() => Math.max(document.documentElement ? document.documentElement.scrollHeight
  : 0, document.body ? document.body.scrollHeight : 0)"""
LINKS_JS = """([max, chars]) => Array.from(document.querySelectorAll('a[href]')).slice(0, max)
  .map(a => [String(a.href).slice(0, 2000),
             (a.innerText || a.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, chars)])"""


class BrowseError(MissionError):
    """A page could not be seen: blocked by the guard, too slow, too large, or the browser
    failed. The message starts with `browse <url>:` and says which."""


class _BrowserFailed(BrowseError):
    """The browser, not the page, failed: worth a fresh browser and one more try."""


@dataclass(frozen=True)
class Link:
    href: str
    text: str


@dataclass(frozen=True)
class BrowsedPage:
    """What a browse subtask saw: screenshots (PNG, long edge <= 1568 px), text and links."""

    url: str
    final_url: str
    status: int | None
    title: str
    text: str
    links: tuple[Link, ...]
    screenshots: tuple[bytes, ...]
    blocked: tuple[str, ...]  # requests the guard refused, each with its reason
    bytes_received: int


@dataclass(frozen=True)
class BrowseLimits:
    nav_timeout_s: float
    total_s: float
    max_bytes: int
    max_pages: int
    max_screenshots: int
    text_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BrowseLimits:
        return cls(
            nav_timeout_s=settings.browse_nav_timeout_s,
            total_s=settings.browse_total_s,
            max_bytes=settings.browse_max_bytes,
            max_pages=settings.browse_max_pages,
            max_screenshots=settings.browse_max_screenshots,
            text_chars=settings.browse_text_chars,
        )


def browse_page(url: str, settings: Settings | None = None, stop: Stop = NEVER) -> BrowsedPage:
    """Open `url` in a fresh browser context and look at it; BrowseError when it cannot be seen,
    GoalStopped (the page closed at once) when the goal run stops meanwhile.

    Safe to call from any thread; at most `browse_max_open` pages are open at once per process.
    """
    settings = settings or get_settings()
    allow = settings.browse_allow
    try:
        check_url(url, allow)  # refuse before a browser is even started
    except Blocked as exc:
        raise BrowseError(f"browse {url}: blocked: {exc.message}") from None
    limits = BrowseLimits.from_settings(settings)
    with _browser.slot(settings.browse_max_open):
        stop.check()
        return _browser.run(
            lambda browser: _see(browser, url, allow, limits),
            settings.chromium_path,
            timeout=limits.total_s + CLOSE_S * 2,
            what=f"browse {url}",
            stop=stop,
        )


def shutdown() -> None:
    """Close this process's Chromium and the Playwright driver (also run at exit)."""
    _browser.shutdown()


class _BrowserThread:
    """One event loop thread per process that owns Playwright and the browser."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owner_pid = 0
        self._slots: threading.BoundedSemaphore | None = None
        # Touched only on the loop thread:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Lock | None = None

    @contextlib.contextmanager
    def slot(self, max_open: int) -> Iterator[None]:
        with self._lock:
            if self._slots is None:
                self._slots = threading.BoundedSemaphore(max_open)
            slots = self._slots
        with slots:
            yield

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked worker inherits the attributes but not the thread: start afresh.
            if self._loop is None or self._owner_pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="mission-browser", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._owner_pid = loop, thread, os.getpid()
                self._playwright = self._browser = None
                self._launching = None
            return self._loop

    def run(
        self,
        job: Callable[[Browser], Awaitable[T]],
        chromium: Path,
        timeout: float,
        what: str,
        stop: Stop,
    ) -> T:
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._with_browser(job, chromium), loop)
        forget = stop.on_stop(future.cancel)  # the loop closes the context as the job unwinds
        try:
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            raise GoalStopped(f"{what}: {stop.reason}") from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BrowseError(f"{what}: the browser did not answer in {timeout:g} s") from None
        finally:
            forget()

    async def _with_browser(self, job: Callable[[Browser], Awaitable[T]], chromium: Path) -> T:
        try:
            return await job(await self._ensure_browser(chromium))
        except _BrowserFailed:
            # Chromium died (OOM killer, a crash): Playwright may not have noticed yet, so
            # start a new one and try once more; a second failure is the page's own doing.
            await self._close_browser()
            return await job(await self._ensure_browser(chromium))

    async def _ensure_browser(self, chromium: Path) -> Browser:
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if not chromium.exists():
                raise ConfigurationError(
                    f"Chromium not found at {chromium} (set MISSION_CHROMIUM_PATH)"
                )
            await self._close_browser()  # a crashed browser: drop it and its driver
            self._playwright = await async_playwright().start()
            try:
                self._browser = await self._playwright.chromium.launch(
                    executable_path=str(chromium),
                    args=[*CHROMIUM_ARGS, f"--mission-owner={os.getpid()}"],
                    timeout=LAUNCH_S * 1000,
                )
            except PlaywrightError as exc:
                await self._close_browser()
                raise BrowseError(f"cannot start Chromium at {chromium}: {exc.message}") from None
            return self._browser

    async def _close_browser(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        if browser is not None:
            with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
                await asyncio.wait_for(browser.close(), CLOSE_S)
        if playwright is not None:
            with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
                await asyncio.wait_for(playwright.stop(), CLOSE_S)

    def shutdown(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or self._owner_pid != os.getpid():
                return
            self._loop = self._thread = None
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_browser(), loop).result(CLOSE_S * 3)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(CLOSE_S)
        if not loop.is_running():
            loop.close()


_browser = _BrowserThread()
atexit.register(shutdown)


@dataclass
class _Session:
    """One browse subtask's state, shared by its route handlers and its proxy."""

    url: str
    allow: Allowlist
    limits: BrowseLimits
    documents: int = 0
    bytes_received: int = 0
    blocked: list[str] = field(default_factory=list)
    refused_navigation: str | None = None  # why the main page may not go where it tried
    proxy_notes: dict[str, str] = field(default_factory=dict)  # "host:port" -> why not
    main_page: Page | None = None
    stop_reason: str | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def stop(self, reason: str) -> None:
        """End the subtask's browsing now: the first reason wins, every connection is cut."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopped.set()
        self.cut_connections()

    def cut_connections(self) -> None:
        for writer in list(self.writers):
            writer.close()

    def refuse(self, url: str, reason: str) -> None:
        if len(self.blocked) < 50:
            self.blocked.append(f"{url[:200]}: {reason}")

    def count_bytes(self, n: int) -> None:
        self.bytes_received += n
        if self.bytes_received > self.limits.max_bytes:
            self.stop(f"browse {self.url}: page larger than {self.limits.max_bytes} bytes")

    def on_any_request(self, request: Request) -> None:
        """Count top-level documents here: `route` does not see every redirect hop."""
        with contextlib.suppress(PlaywrightError):  # requests of workers have no frame
            if not request.is_navigation_request() or request.frame.parent_frame is not None:
                return
            self.documents += 1
            if self.documents > self.limits.max_pages:
                self.stop(
                    f"browse {self.url}: more than {self.limits.max_pages} pages (a redirect loop?)"
                )

    async def on_request(self, route: Route, request: Request) -> None:
        if self.stop_reason is not None:
            await route.abort("blockedbyclient")
            return
        try:
            await asyncio.to_thread(check_url, request.url, self.allow)
        except Blocked as exc:
            self.refuse(request.url, exc.message)
            with contextlib.suppress(PlaywrightError):
                if request.is_navigation_request() and request.frame == _main_frame(self):
                    where = "" if request.url == self.url else f" ({request.url[:200]})"
                    self.refused_navigation = f"{exc.message}{where}"
            await route.abort("blockedbyclient")
            return
        await route.continue_()

    async def on_web_socket(self, socket: WebSocketRoute) -> None:
        try:
            await asyncio.to_thread(check_url, socket.url, self.allow, SOCKET_SCHEMES)
        except Blocked as exc:
            self.refuse(socket.url, exc.message)
            await socket.close(code=1008, reason="blocked")
            return
        socket.connect_to_server()

    async def on_page(self, page: Page) -> None:
        with contextlib.suppress(PlaywrightError):
            if await page.opener() is not None:  # a popup: nobody looks at it, so none runs
                await page.close()


def _main_frame(session: _Session) -> Any:
    return session.main_page.main_frame if session.main_page is not None else None


async def _see(browser: Browser, url: str, allow: Allowlist, limits: BrowseLimits) -> BrowsedPage:
    """Open one fresh context behind its own proxy, look at `url`, and always close both."""
    session = _Session(url=url, allow=allow, limits=limits)
    proxy = await asyncio.start_server(
        lambda r, w: serve_connection(session, r, w), "127.0.0.1", 0, limit=HEAD_LIMIT
    )
    proxy_port = proxy.sockets[0].getsockname()[1]
    context: BrowserContext | None = None
    try:
        context = await _open_context(browser, session, proxy_port)
        return await _watch(context, session)
    except PlaywrightError as exc:  # the browser itself failed (crashed, closed)
        raise _BrowserFailed(
            f"browse {url}: the browser failed: {_why_not(exc.message, url, session)}"
        ) from None
    finally:
        proxy.close()
        session.cut_connections()
        if context is not None:
            with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
                await asyncio.wait_for(context.close(), CLOSE_S)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proxy.wait_closed(), CLOSE_S)


async def _open_context(browser: Browser, session: _Session, proxy_port: int) -> BrowserContext:
    """A fresh context whose every way out is guarded: routes, WebSockets, popups, proxy."""
    context = await browser.new_context(
        viewport=VIEWPORT,
        device_scale_factor=1,
        service_workers="block",
        accept_downloads=False,
        java_script_enabled=True,
        proxy={"server": f"http://127.0.0.1:{proxy_port}"},
    )
    try:
        await context.add_init_script(NO_WEBRTC)
        await context.route("**/*", session.on_request)
        await context.route_web_socket("**/*", session.on_web_socket)
    except BaseException:
        with contextlib.suppress(PlaywrightError):
            await context.close()
        raise
    context.on("page", session.on_page)
    context.on("request", session.on_any_request)
    return context


async def _watch(context: BrowserContext, session: _Session) -> BrowsedPage:
    """Look at the page, but stop at the total time or the moment a limit is hit."""
    work = asyncio.ensure_future(_look(context, session))
    stopped = asyncio.ensure_future(session.stopped.wait())
    done, _ = await asyncio.wait(
        {work, stopped}, timeout=session.limits.total_s, return_when=asyncio.FIRST_COMPLETED
    )
    for pending in (work, stopped):
        pending.cancel()
    results = await asyncio.gather(work, stopped, return_exceptions=True)
    if session.stop_reason is not None:
        raise BrowseError(session.stop_reason)
    if work not in done:
        raise BrowseError(
            f"browse {session.url}: gave up after {session.limits.total_s:g} s in total"
        )
    if isinstance(results[0], BaseException):
        raise results[0]
    page: BrowsedPage = results[0]
    return page


async def _look(context: BrowserContext, session: _Session) -> BrowsedPage:
    url, limits = session.url, session.limits
    page = session.main_page = await context.new_page()
    page.set_default_timeout(limits.nav_timeout_s * 1000)
    in_flight = _track_requests(page)
    try:
        response = await page.goto(
            url, wait_until="domcontentloaded", timeout=limits.nav_timeout_s * 1000
        )
    except PlaywrightTimeout:
        raise BrowseError(
            f"browse {url}: navigation timed out after {limits.nav_timeout_s:g} s"
        ) from None
    except PlaywrightError as exc:
        if session.stop_reason is not None:
            raise BrowseError(session.stop_reason) from None
        if session.refused_navigation is not None:
            raise BrowseError(f"browse {url}: blocked: {session.refused_navigation}") from None
        raise BrowseError(f"browse {url}: {_why_not(exc.message, url, session)}") from None
    if response is not None and (note := response.headers.get(PROXY_HEADER)):
        raise BrowseError(f"browse {url}: {note}")
    await _settle(page, in_flight)
    if session.refused_navigation is not None:  # the page tried to move (script, meta, form)
        raise BrowseError(f"browse {url}: blocked: {session.refused_navigation}")
    if not page.url.startswith(("http://", "https://")):  # file:, data:, about: and the like
        raise BrowseError(f"browse {url}: blocked: the page moved to {page.url[:100]}")
    try:
        screenshots = await _screenshots(page, limits.max_screenshots)
        text = str(await page.evaluate(PAGE_TEXT_JS, limits.text_chars) or "")
        raw_links = await page.evaluate(LINKS_JS, [MAX_LINKS * 10, LINK_TEXT_CHARS])
        title = await page.title()
    except PlaywrightTimeout:
        raise BrowseError(
            f"browse {url}: the page stopped responding once loaded "
            f"(no screenshot or text within {limits.nav_timeout_s:g} s)"
        ) from None
    except PlaywrightError as exc:
        raise BrowseError(
            session.stop_reason or f"browse {url}: {_why_not(exc.message, url, session)}"
        ) from None
    return BrowsedPage(
        url=url,
        final_url=page.url,
        status=response.status if response is not None else None,
        title=title[:300],
        text=text[: limits.text_chars],
        links=_links(raw_links),
        screenshots=screenshots,
        blocked=tuple(session.blocked),
        bytes_received=session.bytes_received,
    )


def _track_requests(page: Page) -> set[Request]:
    """The page's requests in flight, kept up to date from its events."""
    in_flight: set[Request] = set()

    def started(request: Request) -> None:
        in_flight.add(request)

    def ended(request: Request) -> None:
        in_flight.discard(request)

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    return in_flight


async def _settle(page: Page, in_flight: set[Request]) -> None:
    """Wait for `load`, then until no request of the page has been in flight for QUIET_S,
    within SETTLE_S each: a busy page is still worth a look. (Playwright's `networkidle`
    always waits 500 ms, twice this.)"""
    with contextlib.suppress(PlaywrightError):
        await page.wait_for_load_state("load", timeout=SETTLE_S * 1000)
    loop = asyncio.get_running_loop()
    deadline = quiet_since = loop.time()
    deadline += SETTLE_S
    while loop.time() < deadline:
        if in_flight:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= QUIET_S:
            return
        await asyncio.sleep(0.05)


async def _screenshots(page: Page, most: int) -> tuple[bytes, ...]:
    """The page from the top, one viewport-sized PNG per screen, at most `most` of them."""
    width, height = VIEWPORT["width"], VIEWPORT["height"]
    shots = [await page.screenshot(type="png", scale="css", animations="disabled")]
    if most > 1:
        page_height = int(await page.evaluate(PAGE_HEIGHT_JS) or 0)
        for top in range(height, min(page_height, height * most), height):
            clip = FloatRect(x=0, y=top, width=width, height=min(height, page_height - top))
            shots.append(
                await page.screenshot(
                    type="png",
                    scale="css",
                    animations="disabled",
                    full_page=True,
                    clip=clip,
                )
            )
    return tuple(shots)


def _links(raw: Any) -> tuple[Link, ...]:
    links: list[Link] = []
    seen: set[str] = set()
    for item in raw if isinstance(raw, list) else []:
        href, text = (str(part) for part in item[:2])
        if not href.startswith(("http://", "https://")) or href in seen:
            continue
        seen.add(href)
        links.append(Link(href=href[:2000], text=text[:LINK_TEXT_CHARS]))
        if len(links) == MAX_LINKS:
            break
    return tuple(links)


def _why_not(message: str, url: str, session: _Session) -> str:
    """A readable reason from Playwright's navigation error (first line, no call log)."""
    line = message.strip().splitlines()[0] if message.strip() else "the browser failed"
    line = re.sub(r"^[\w.]+: ", "", line).split(" at http", 1)[0]
    if "ERR_TOO_MANY_REDIRECTS" in line:
        return f"redirect loop ({line})"
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    return session.proxy_notes.get(f"{parts.hostname}:{port}") or line
