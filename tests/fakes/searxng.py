"""A fake SearXNG JSON endpoint on loopback that searches the research web's pages.

`GET /search?q=...&format=json` answers `{"query", "results": [{url, title, content, engine,
score}]}` ranked by how many of the query's words a page holds (title words count twice).
It records every query (`queries`, and all parameters in `params`), can put extra hits
first (a canary on loopback, a private address, a non-http URL: the SSRF tests' material)
and can be told to fail (`failure`: an HTTP status, an HTML page, JSON cut short, JSON
without a list of results, an oversized body) or to be slow (`delay_s`).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer, send
from tests.fakes.research_web import ResearchWeb

Failure = Literal["status", "not-json", "malformed", "no-results", "huge"]
_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


@dataclass
class FakeSearxng(LoopbackServer):
    web: ResearchWeb
    queries: list[str] = field(default_factory=list)
    params: list[dict[str, list[str]]] = field(default_factory=list)
    extra_hits: list[dict[str, Any]] = field(default_factory=list)
    failure: Failure | None = None
    status: int = 500
    delay_s: float = 0.0
    per_page: int = 10

    def __post_init__(self) -> None:
        LoopbackServer.__init__(self)

    @property
    def url(self) -> str:
        """What MISSION_SEARCH_URL would be set to."""
        return f"{self.origin}/search"

    def reset(self) -> None:
        with self._lock:
            self.queries.clear()
            self.params.clear()
            self.extra_hits.clear()
            self.failure, self.status, self.delay_s = None, 500, 0.0

    def add_hit(self, url: str, title: str = "A result", content: str = "") -> None:
        """Answer every query with this hit first (before the ranked pages)."""
        with self._lock:
            self.extra_hits.append({"url": url, "title": title, "content": content})

    def results(self, query: str) -> list[dict[str, Any]]:
        """The ranked pages for `query`, as the `results` of the JSON answer."""
        wanted = _words(query)
        scored = []
        for slug, page in self.web.pages.items():
            score = 2 * len(wanted & _words(page.title)) + len(wanted & _words(page.text))
            if score:
                scored.append((-score, slug))
        results = []
        for negative, slug in sorted(scored)[: self.per_page]:
            page = self.web.pages[slug]
            # The paragraph holding the most query words (the first of equals).
            snippet = max(page.paragraphs, key=lambda p: len(wanted & _words(p)))
            results.append(
                {
                    "url": self.web.url_of(slug),
                    "title": page.title,
                    "content": snippet[:200],
                    "engine": "fake",
                    "score": float(-negative),
                }
            )
        return results

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        params = parse_qs(parts.query)
        query = params.get("q", [""])[0]
        with self._lock:
            self.queries.append(query)
            self.params.append(params)
            failure, status, delay = self.failure, self.status, self.delay_s
            extra = list(self.extra_hits)
        if delay:
            time.sleep(delay)
        if parts.path != "/search":
            return self._send(h, 404, b"not found")
        if params.get("format") != ["json"]:
            return self._send(h, 403, b"format not allowed")  # as SearXNG without json enabled
        if failure == "status":
            return self._send(h, status, b"upstream engines failed")
        if failure == "not-json":
            return self._send(h, 200, b"<html>rate limited</html>")
        if failure == "malformed":
            return self._send(h, 200, b'{"results": [{"url": "http://127.0.0.1/", "title": "cut')
        if failure == "no-results":
            return self._send(h, 200, json.dumps({"query": query, "results": "none"}).encode())
        if failure == "huge":
            return self._send(h, 200, b'{"results": [' + b"0," * 2_000_000 + b"0]}")
        answer = {"query": query, "results": extra + self.results(query)}
        return self._send(h, 200, json.dumps(answer).encode())

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        send(h, status, "application/json" if status == 200 else "text/plain", body)


@contextlib.contextmanager
def serve_searxng(web: ResearchWeb) -> Iterator[FakeSearxng]:
    fake = FakeSearxng(web).start()
    try:
        yield fake
    finally:
        fake.stop()
