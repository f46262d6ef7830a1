"""The source book: ids 1, 2, 3 … per goal run, one per URL, snapshots kept, safe across threads."""

from __future__ import annotations

import pickle
import threading
from datetime import UTC, datetime

import pytest

from core.errors import MissionError, ProviderError
from core.sources import Hit, SearchError, Source, SourceBook, normalise_url

AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def book() -> SourceBook:
    return SourceBook(clock=lambda: AT)


def test_ids_count_up_from_one_in_the_order_sources_come_in() -> None:
    sources = book()
    first = sources.add("https://a.example/x", "A", "search", "find", "snippet a")
    second = sources.add("https://b.example/", "B", "page", "open_b", "page b")
    assert (first.id, second.id) == (1, 2)
    assert sources.ids() == frozenset({1, 2})
    assert sources.sources() == [
        Source(
            id=1, url="https://a.example/x", title="A", kind="search", subtask="find", fetched_at=AT
        ),
        Source(
            id=2, url="https://b.example/", title="B", kind="page", subtask="open_b", fetched_at=AT
        ),
    ]
    assert len(sources) == 2
    assert sources.get(2) == second and sources.get(3) is None and sources.get(0) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://A.Example/x", "https://a.example/x"),
        ("HTTPS://a.example:443/x#part", "https://a.example/x"),
        ("http://a.example", "http://a.example/"),
        ("  http://a.example:80/  ", "http://a.example/"),
    ],
)
def test_one_source_per_normalised_url(one: str, other: str) -> None:
    sources = book()
    assert sources.add(one, "t", "search", "s").id == sources.add(other, "t", "search", "s").id == 1
    assert len(sources) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://a.example/X", "https://a.example/x"),  # paths are case-sensitive
        ("https://a.example/?q=1", "https://a.example/?q=2"),
        ("https://a.example:8443/", "https://a.example/"),
        ("http://a.example/", "https://a.example/"),
        ("corpus:notes/a.md", "corpus:notes/A.md"),
    ],
)
def test_different_urls_are_different_sources(one: str, other: str) -> None:
    assert normalise_url(one) != normalise_url(other)


def test_normalising_keeps_odd_urls_as_they_are() -> None:
    assert normalise_url(" corpus:a%20b.md ") == "corpus:a%20b.md"
    assert normalise_url("http://[::1") == "http://[::1"  # not a URL urlsplit can read
    assert normalise_url("http://[::1]:8080/a") == "http://[::1]:8080/a"
    assert normalise_url("https://user@Host.example/a") == "https://user@host.example/a"


def test_a_page_opened_from_a_hit_keeps_the_id_and_gains_its_snapshot() -> None:
    sources = book()
    sources.add("https://a.example/x", "", "search", "find", "the snippet")
    again = sources.add("https://a.example/x#top", "Alpha", "page", "open_a", "the whole page")
    assert again.id == 1
    assert again.kind == "page"  # opened beats found
    assert again.title == "Alpha"  # an empty title is filled in
    assert again.subtask == "find"  # who brought it in first
    assert sources.given_to("find") == {1: ("the snippet", "the whole page")}
    assert sources.given_to("open_a") == {1: ("the snippet", "the whole page")}
    # Seen again as a hit: the kind does not go back, the title is not replaced.
    later = sources.add("https://a.example/x", "Other title", "search", "find", "the snippet")
    assert (later.kind, later.title) == ("page", "Alpha")
    assert sources.given_to("find")[1] == ("the snippet", "the whole page")


def test_sources_are_given_to_who_found_them_and_handed_on_explicitly() -> None:
    sources = book()
    sources.add("https://a.example/", "A", "search", "find", "a")
    sources.add("https://b.example/", "B", "search", "find", "b")
    sources.add("https://c.example/", "C", "page", "other", "c")
    assert set(sources.given_to("find")) == {1, 2}
    assert sources.given_to("write") == {}
    sources.give("write", [2, 3, 99, 0])  # ids it does not hold are ignored
    assert sources.given_to("write") == {2: ("b",), 3: ("c",)}


def test_returned_sources_are_copies() -> None:
    sources = book()
    sources.add("https://a.example/", "A", "search", "find")
    sources.sources()[0].title = "changed"
    assert sources.get(1) is not None and sources.get(1).title == "A"  # type: ignore[union-attr]


def test_threads_adding_at_once_get_distinct_consecutive_ids() -> None:
    sources = book()
    got: list[int] = []
    lock = threading.Lock()

    def add(worker: int) -> None:
        for n in range(50):
            # Every URL is added by two workers: each must still get exactly one id.
            number = sources.add(
                f"https://x.example/{n}-{worker // 2}", "t", "search", f"w{worker}"
            ).id
            with lock:
                got.append(number)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sources) == 200
    assert sorted(set(got)) == list(range(1, 201))
    assert [s.id for s in sources.sources()] == list(range(1, 201))


def test_hits_and_search_errors() -> None:
    hit = Hit(title="A", url="https://a.example/")
    assert hit.snippet == ""
    error = SearchError("search at searx.example: no answer within 10 s", transient=True)
    assert isinstance(error, MissionError) and isinstance(error, ProviderError)
    assert error.transient
    # Prefect hands a failed task's exception between processes.
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), again.message, again.transient) == (SearchError, error.message, True)
