"""Retrievers a `search` subtask sends its query to: a SearXNG-compatible web search, BM25
over a local folder of documents, or Anthropic's server-side web search. Each answers
`search(query, limit) -> list[Hit]`; `retriever_from(settings)` picks the configured one."""

from __future__ import annotations

from core.errors import ConfigurationError
from core.gateway import web_search
from core.settings import Settings
from core.sources import Hit, SearchError
from core.stop import NEVER, Stop
from tasks.retrievers.base import Retriever
from tasks.retrievers.corpus import CorpusRetriever
from tasks.retrievers.searxng import SearxngRetriever


class AnthropicSearch:
    """Anthropic's web search tool (core.gateway.web_search), as a Retriever."""

    def __init__(self, stop: Stop = NEVER) -> None:
        self.stop = stop

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        return web_search(query, limit, self.stop)


def retriever_from(settings: Settings, stop: Stop = NEVER) -> Retriever:
    """The configured retriever: MISSION_SEARCH_URL, else MISSION_SEARCH=anthropic, else
    MISSION_SEARCH_CORPUS."""
    if settings.search_url:
        return SearxngRetriever(settings.search_url, timeout_s=settings.search_timeout_s)
    if settings.search == "anthropic":
        return AnthropicSearch(stop)
    if settings.search_corpus is not None:
        return CorpusRetriever(settings.search_corpus)
    raise ConfigurationError(
        "no search is configured: set MISSION_SEARCH_URL, MISSION_SEARCH=anthropic or "
        "MISSION_SEARCH_CORPUS"
    )


def corpus_of(settings: Settings) -> CorpusRetriever | None:
    """The corpus documents found by search are read from (`corpus:` URLs)."""
    return CorpusRetriever(settings.search_corpus) if settings.search_corpus else None


__all__ = [
    "AnthropicSearch",
    "CorpusRetriever",
    "Hit",
    "Retriever",
    "SearchError",
    "SearxngRetriever",
    "corpus_of",
    "retriever_from",
]
