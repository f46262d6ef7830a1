"""The research web serves every page with the facts and decoys its tables promise."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tasks.retrievers.text import extract
from tests.fakes.research_web import (
    DECOYS,
    FACTS,
    INJECTION,
    PAGES,
    ResearchWeb,
    serve_research_web,
)
from tests.fakes.searxng import serve_searxng


@pytest.fixture(scope="module")
def web() -> Iterator[ResearchWeb]:
    with serve_research_web() as served:
        yield served


def test_every_page_is_served_and_reads_back_as_its_text(web: ResearchWeb) -> None:
    assert len(PAGES) >= 20
    with httpx.Client() as client:
        for slug, page in PAGES.items():
            answer = client.get(web.url_of(slug))
            assert answer.status_code == 200, slug
            read = extract(f"{slug}.html", answer.content)
            assert read.title == page.title
            # What a browse or a corpus snapshot of the page holds is the page's `text`.
            assert " ".join(read.text.split()) == " ".join(page.text.split())
            assert "tracking code" not in read.text
        home = client.get(web.url + "/").text
        assert all(web.url_of(slug) in home for slug in PAGES)
        assert client.get(web.url + "/no-such-page").status_code == 404
    assert web.requests[-2:] == ["/", "/no-such-page"]
    assert web.slug_of(web.url_of("hanzo")) == "hanzo"
    assert web.slug_of("http://elsewhere.example/hanzo") is None


def test_facts_are_on_the_company_pages_and_decoys_elsewhere(web: ResearchWeb) -> None:
    assert web.facts is FACTS and web.decoys is DECOYS
    assert len(FACTS) == 10
    for slug, facts in FACTS.items():
        text = PAGES[slug].text
        assert all(value in text for value in facts.values()), slug
    for slug, wrong in DECOYS.items():
        for fact, value in wrong.items():
            assert value != FACTS[slug][fact]
            assert value not in PAGES[slug].text
            assert any(value in p.text for p in PAGES.values() if p.kind != "company"), value


def test_the_decoys_are_there() -> None:
    kinds = [page.kind for page in PAGES.values()]
    assert kinds.count("decoy") >= 3 and kinds.count("unrelated") >= 2
    assert INJECTION in PAGES["torkline-review"].text
    stale = PAGES["velocargo-press-2016"]
    assert stale.published is not None and stale.published < "2017"
    assert "Velocargo Logistics" in PAGES["velocargo-logistics"].title


def test_the_fake_searxng_searches_these_pages(web: ResearchWeb) -> None:
    with serve_searxng(web) as searx:
        answer = httpx.get(searx.url, params={"q": "Hanzo Mule price", "format": "json"}).json()
        assert answer["query"] == "Hanzo Mule price"
        urls = [r["url"] for r in answer["results"]]
        assert web.url_of("hanzo") in urls and len(urls) <= 10
        assert all(web.slug_of(url) for url in urls)
        refused = httpx.get(searx.url, params={"q": "x", "format": "html"})
        assert refused.status_code == 403
        assert searx.queries == ["Hanzo Mule price", "x"]
