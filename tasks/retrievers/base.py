"""What every retriever is: `search(query, limit) -> list[Hit]`, and the query rules they share."""

from __future__ import annotations

from typing import Protocol

from core.sources import Hit, SearchError

MAX_QUERY_CHARS = 400  # a longer query is a model pasting text, not searching
MAX_LIMIT = 50
MAX_TITLE_CHARS = 300
MAX_SNIPPET_CHARS = 500


class Retriever(Protocol):
    """Something that answers a query with ranked hits, best first.

    Hits are data from elsewhere: a web retriever's URLs are untrusted, and whoever opens one
    must put it through the SSRF guard (core/web_guard.py) first. Failures raise SearchError.
    """

    def search(self, query: str, limit: int = 10) -> list[Hit]: ...


def clean_query(query: str) -> str:
    """The query with its whitespace collapsed, cut at a word near MAX_QUERY_CHARS; an empty
    one is refused (SearchError), since every retriever would answer it with noise."""
    words = " ".join(query.split())
    if not words:
        raise SearchError("the search query is empty")
    if len(words) > MAX_QUERY_CHARS:
        cut = words[:MAX_QUERY_CHARS]
        words = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return words


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    words = " ".join(text.split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"
