"""Web search through any SearXNG-compatible JSON endpoint (`MISSION_SEARCH_URL`)."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.sources import Hit, SearchError, normalise_url
from tasks.retrievers.base import (
    MAX_SNIPPET_CHARS,
    MAX_TITLE_CHARS,
    clamp_limit,
    clean_query,
    shorten,
)

MAX_RESPONSE_BYTES = 2 * 1024 * 1024
_TAG = re.compile(r"<[^<>]{0,200}>")  # some engines hand back highlighted snippets


class SearxngRetriever:
    """Asks `GET <url>?q=<query>&format=json` and reads `{"results": [{url, title, content}]}`.

    `url` is the operator's choice and trusted (its own query parameters, a language or a
    key, are kept); the hits it returns are not. Only http(s) hits with a host are kept, the
    rest dropped silently; a kept hit's URL is still unchecked, and whoever opens it must put it
    through the SSRF guard (core/web_guard.py). No redirect is followed. Failures raise
    SearchError naming the service's host, never its full URL (it may carry a key); timeouts,
    dropped connections, 429 and 5xx are transient.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        max_bytes: int = MAX_RESPONSE_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SearchError(f"the search URL must be an http(s) URL with a host, not {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._where = f"search at {parts.netloc.rpartition('@')[2]}"
        self._transport = transport

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        request = httpx.URL(self.url).copy_merge_params({"q": clean_query(query), "format": "json"})
        body = self._get(request)
        try:
            answer = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise SearchError(f"{self._where}: the answer is not JSON") from None
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise SearchError(f"{self._where}: the answer has no list of results")
        return _hits(results, clamp_limit(limit))

    def _get(self, url: httpx.URL) -> bytes:
        try:
            with (
                httpx.Client(
                    timeout=self.timeout_s,
                    follow_redirects=False,
                    headers={"accept": "application/json", "user-agent": "mission-control"},
                    transport=self._transport,
                ) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise _status_error(self._where, response.status_code)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise SearchError(
                            f"{self._where}: the answer is over {self.max_bytes} bytes"
                        )
                return bytes(body)
        except httpx.TimeoutException:
            raise SearchError(
                f"{self._where}: no answer within {self.timeout_s:g} s", transient=True
            ) from None
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            raise SearchError(f"{self._where}: {why}", transient=True) from None


def _status_error(where: str, status: int) -> SearchError:
    if status == 403:
        # SearXNG answers 403 to format=json unless its settings.yml lists json in formats.
        return SearchError(f"{where}: 403 forbidden (does the instance enable the json format?)")
    if status == 429 or status >= 500:
        return SearchError(f"{where}: HTTP {status}", transient=True)
    return SearchError(f"{where}: HTTP {status}")


def _hits(results: list[Any], limit: int) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[str] = set()
    for result in results:
        if len(hits) == limit:
            break
        if not isinstance(result, dict) or not isinstance(result.get("url"), str):
            continue
        url = result["url"].strip()
        try:
            parts = urlsplit(url)
            web = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:
            web = False
        key = normalise_url(url)
        if not web or key in seen:
            continue
        seen.add(key)
        title, content = result.get("title"), result.get("content")
        hits.append(
            Hit(
                title=shorten(_text(title) or url, MAX_TITLE_CHARS),
                url=url,
                snippet=shorten(_text(content), MAX_SNIPPET_CHARS),
            )
        )
    return hits


def _text(value: Any) -> str:
    return html.unescape(_TAG.sub(" ", value)) if isinstance(value, str) else ""
