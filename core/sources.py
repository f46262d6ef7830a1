"""Where a research goal run's facts come from: search hits, and the numbered sources they become.

A `search` subtask gets `Hit`s from a retriever; every hit it hands on and every page or
document opened becomes a `Source` with an id (1, 2, 3 … per goal run) that subtasks and the
final answer cite as `[n]`. The `SourceBook` hands out those ids and keeps, per source, the
text snapshots the citation checker (core/citations.py) quotes are checked against, and which
subtasks were given which sources.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from core.errors import ProviderError

SourceKind = Literal["search", "page", "document"]
# A page opened, or a document read, says more than the search hit that pointed at it.
_RANK: dict[SourceKind, int] = {"search": 0, "page": 1, "document": 1}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SearchError(ProviderError):
    """A search failed: the search service did not answer usefully, or the corpus could not be
    read. The message says which and why; `transient` ones (timeouts, 5xx) are worth another
    attempt, so Prefect's retry of a subtask treats them like a provider's hiccups."""


class Hit(BaseModel):
    """One search result, as a retriever returns it; its URL is untrusted until checked."""

    title: str
    url: str
    snippet: str = ""


class Source(BaseModel):
    """One numbered source of a goal run, as the progress document lists it."""

    id: int = Field(ge=1)
    url: str
    title: str
    kind: SourceKind
    subtask: str  # the subtask that brought it in
    fetched_at: datetime


def normalise_url(url: str) -> str:
    """The form two URLs of the same source share: scheme and host in lower case, no default
    port, no fragment, `/` for an empty path. Other schemes (`corpus:`) are only stripped."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return text
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _now() -> datetime:
    return datetime.now(UTC)


class SourceBook:
    """The sources of one goal run: ids 1, 2, 3 … in the order they come in, one per
    normalised URL, with their text snapshots and who was given each.

    Subtasks run as threads, so every method takes the book's lock. A source seen again (the
    page a search hit pointed at) keeps its id and gains the new snapshot; its kind moves up
    from `search` to `page`, and an empty title is filled in.
    """

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: list[Source] = []
        self._by_url: dict[str, int] = {}
        self._snapshots: dict[int, list[str]] = {}
        self._given: dict[str, set[int]] = {}

    def add(self, url: str, title: str, kind: SourceKind, subtask: str, text: str = "") -> Source:
        """Register a source (or find it by URL), keep `text` as one of its snapshots and give
        it to `subtask`, which found or opened it."""
        key = normalise_url(url)
        with self._lock:
            number = self._by_url.get(key)
            if number is None:
                number = len(self._sources) + 1
                source = Source(
                    id=number,
                    url=url.strip(),
                    title=title.strip(),
                    kind=kind,
                    subtask=subtask,
                    fetched_at=self._clock(),
                )
                self._sources.append(source)
                self._by_url[key] = number
                self._snapshots[number] = []
            else:
                source = self._upgrade(self._sources[number - 1], title, kind)
                self._sources[number - 1] = source
            snapshots = self._snapshots[number]
            if text and text not in snapshots:
                snapshots.append(text)
            self._given.setdefault(subtask, set()).add(number)
            return source.model_copy()

    @staticmethod
    def _upgrade(source: Source, title: str, kind: SourceKind) -> Source:
        changes: dict[str, object] = {}
        if not source.title and title.strip():
            changes["title"] = title.strip()
        if _RANK[kind] > _RANK[source.kind]:
            changes["kind"] = kind
        return source.model_copy(update=changes) if changes else source

    def give(self, subtask: str, ids: Iterable[int]) -> None:
        """Hand existing sources to `subtask` (a dependent receives its dependencies' sources);
        ids the book does not hold are ignored."""
        with self._lock:
            known = {i for i in ids if 1 <= i <= len(self._sources)}
            self._given.setdefault(subtask, set()).update(known)

    def given_to(self, subtask: str) -> dict[int, tuple[str, ...]]:
        """The sources `subtask` was given, each with its snapshots: what check_citations takes."""
        with self._lock:
            return {i: tuple(self._snapshots[i]) for i in sorted(self._given.get(subtask, ()))}

    def given_to_ids(self, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """The snapshots of these sources (ids the book does not hold are left out)."""
        with self._lock:
            return {i: tuple(self._snapshots[i]) for i in ids if i in self._snapshots}

    def ids(self) -> frozenset[int]:
        """Every id handed out so far (a cited id outside these does not exist)."""
        with self._lock:
            return frozenset(range(1, len(self._sources) + 1))

    def get_by_url(self, url: str) -> Source | None:
        with self._lock:
            number = self._by_url.get(normalise_url(url))
            return self._sources[number - 1].model_copy() if number else None

    def get(self, number: int) -> Source | None:
        with self._lock:
            if 1 <= number <= len(self._sources):
                return self._sources[number - 1].model_copy()
            return None

    def sources(self) -> list[Source]:
        """Every source, by id."""
        with self._lock:
            return [s.model_copy() for s in self._sources]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sources)
