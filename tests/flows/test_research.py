"""Research that finds and cites its sources, end to end on a real Prefect server: a fake
SearXNG over a small web of fictional companies served on loopback, real Chromium, and the
citations checked by code."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from core.progress import ProgressDocument
from flows.compound_goal import compound_goal
from services.progress import read_progress
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.research_web import ResearchWeb, serve_research_web
from tests.fakes.searxng import FakeSearxng, serve_searxng
from tests.fakes.web_pages import Canary

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

GOAL = "Research the top 3 makers of electric cargo bikes and write a summary"
MARKER = re.compile(r"\[(\d+)⚠?\]")


@pytest.fixture
def research(settings_env: pytest.MonkeyPatch) -> Iterator[tuple[ResearchWeb, FakeSearxng]]:
    with serve_research_web() as web, serve_searxng(web) as search:
        settings_env.setenv("MISSION_SEARCH_URL", search.url)
        settings_env.setenv("MISSION_BROWSE_ALLOW", web.allow)
        yield web, search


def progress(flow_run_id: UUID | None) -> ProgressDocument:
    async def read() -> ProgressDocument:
        async with get_client() as client:
            return await read_progress(client, str(flow_run_id))

    return asyncio.run(read())


def run(goal: str, plan: dict[str, Any] | None = None) -> ProgressDocument:
    state = compound_goal(goal, plan=plan, return_state=True)
    return progress(state.state_details.flow_run_id)


def body_and_sources_list(result: str) -> tuple[str, str]:
    body, _, listed = result.partition("## Sources")
    assert listed, "the result does not end with a Sources list"
    return body, listed


def test_a_research_goal_cites_only_what_it_fetched_and_every_citation_verifies(
    research: tuple[ResearchWeb, FakeSearxng], settings_env: pytest.MonkeyPatch
) -> None:
    web, search = research
    settings_env.setenv("MISSION_PROVIDER", "simulated")  # plans search -> browse -> write
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "default=0")
    doc = run(GOAL)

    assert doc.state == "Completed", doc.message
    kinds = {s.id: s.kind for s in doc.subtasks}
    assert kinds["search"] == "search" and list(kinds.values()).count("browse") == 3
    assert search.queries, "the search service was never asked"
    opened = [s for s in doc.sources if s.kind == "page"]
    assert len(opened) == 3 and len({s.url for s in opened}) == 3  # each read a different hit
    assert all(web.slug_of(s.url) for s in doc.sources)  # every source is of the loopback web
    assert doc.citations.total > 0
    assert doc.citations.verified == doc.citations.total and doc.citations.flagged == []

    assert doc.result is not None
    body, listed = body_and_sources_list(doc.result)
    cited = {int(n) for n in MARKER.findall(body)}
    assert cited and cited <= {s.id for s in opened}  # cites only pages it read
    assert "⚠" not in doc.result
    assert {int(n) for n in re.findall(r"^- \[(\d+)\]", listed, re.M)} == {
        s.id for s in doc.sources
    }  # the Sources list is the document's sources
    for source in doc.sources:
        assert source.url in listed


def test_a_fabricated_citation_and_a_misquote_are_flagged_in_the_result_and_the_document(
    research: tuple[ResearchWeb, FakeSearxng], fake_anthropic: FakeAnthropic
) -> None:
    web, _ = research
    page = web.url_of("velocargo")
    plan = {
        "subtasks": [
            {"id": "read", "title": "Read", "instruction": "Read it.", "kind": "browse",
             "tier": "vision", "url": page},
            {"id": "facts", "title": "Facts", "instruction": "State the facts.",
             "kind": "extract", "tier": "fast", "depends_on": ["read"]},
        ]
    }  # fmt: skip
    fake_anthropic.on(
        "Subtask id: facts\n",
        tool_input={
            "output": 'It was "founded on the moon in 1066" [1]. Its rival is famous [99].',
            "learned": "made up",
        },
    )
    doc = run("What is Velocargo?", plan)

    reasons = [(f.source, f.subtask, f.reason) for f in doc.citations.flagged]
    assert (1, "facts") in [(s, t) for s, t, _ in reasons]
    assert any(s == 1 and "quoted words are not in source 1" in r for s, _, r in reasons)
    assert any(s == 99 and "does not exist" in r for s, _, r in reasons)
    assert doc.citations.verified < doc.citations.total
    assert doc.result is not None and "could not be verified" in doc.result
    detail = next(s for s in doc.subtasks if s.id == "facts")
    assert detail.state == "Completed"


def test_a_search_hit_at_a_private_address_is_refused_without_a_request(
    research: tuple[ResearchWeb, FakeSearxng], settings_env: pytest.MonkeyPatch
) -> None:
    _, search = research
    canary = Canary().start()
    try:
        search.add_hit(canary.url + "/secret", title="Click me first")
        search.add_hit("http://10.0.0.7/admin", title="An intranet page")
        settings_env.setenv("MISSION_PROVIDER", "simulated")
        settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "default=0")
        doc = run(GOAL)
    finally:
        canary.stop()
    assert canary.contacts == []
    assert all("127.0.0.1:" + str(canary.port) not in s.url for s in doc.sources)
    assert all("10.0.0.7" not in s.url for s in doc.sources)
    assert doc.state == "Completed", doc.message


def test_anthropics_web_search_tool_finds_the_sources_when_it_is_the_retriever(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    with serve_research_web() as web:
        settings_env.setenv("MISSION_SEARCH", "anthropic")
        settings_env.setenv("MISSION_BROWSE_ALLOW", web.allow)
        fake_anthropic.search_hits = [
            (web.url_of("torkline"), "Torkline Bikes"),
            (web.url_of("hanzo"), "Hanzo Cargo"),
        ]
        plan = {
            "subtasks": [
                {"id": "find", "title": "Find", "instruction": "cargo bike makers",
                 "kind": "search", "tier": "fast"},
                {"id": "read", "title": "Read", "instruction": "Read the first result.",
                 "kind": "browse", "tier": "vision", "depends_on": ["find"]},
            ]
        }  # fmt: skip
        doc = run("Which cargo bike makers are there?", plan)
    assert doc.state == "Completed", doc.message
    searched = [c for c in fake_anthropic.calls if "web_search" in str(c.body.get("tools"))]
    assert len(searched) == 1 and "cargo bike makers" in searched[0].prompt
    assert [(s.id, s.url) for s in doc.sources] == [
        (1, web.url_of("torkline")),
        (2, web.url_of("hanzo")),
    ]
    assert {s.id: s.kind for s in doc.sources} == {1: "page", 2: "search"}  # read took the first


def test_a_local_corpus_is_searched_and_its_documents_read_and_cited_without_a_browser(
    tmp_path: Any, settings_env: pytest.MonkeyPatch
) -> None:
    from tests.fakes.corpus_docs import write_corpus

    write_corpus(tmp_path, count=60)
    settings_env.setenv("MISSION_SEARCH_CORPUS", str(tmp_path))
    settings_env.setenv("MISSION_PROVIDER", "simulated")
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "default=0")
    plan = {
        "subtasks": [
            {"id": "find", "title": "Find", "instruction": "torkline frame warranty years",
             "kind": "search", "tier": "fast"},
            {"id": "read", "title": "Read", "instruction": "Read the best document.",
             "kind": "browse", "tier": "fast", "depends_on": ["find"]},
            {"id": "answer", "title": "Answer", "instruction": "How long is the warranty?",
             "kind": "extract", "tier": "fast", "depends_on": ["read"]},
        ]
    }  # fmt: skip
    doc = run("How long is the Torkline frame warranty?", plan)

    assert doc.state == "Completed", doc.message
    read = [s for s in doc.sources if s.kind == "document"]
    assert [s.url for s in read] == ["corpus:policies/torkline-warranty.md"]
    assert doc.citations.total > 0 and doc.citations.verified == doc.citations.total
    assert doc.result is not None and "seven-year warranty" in doc.result


def test_each_source_opens_with_its_text_and_a_pages_screenshot_over_rest(
    research: tuple[ResearchWeb, FakeSearxng], settings_env: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from api.main import create_app
    from core.settings import Settings

    web, _ = research
    settings_env.setenv("MISSION_PROVIDER", "simulated")
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "default=0")
    doc = run(GOAL)
    page = next(s for s in doc.sources if s.kind == "page")
    hit = next(s for s in doc.sources if s.kind == "search")
    settings = Settings(password=SecretStr("unused-password"), api_tokens=SecretStr("t" * 20))
    with TestClient(create_app(settings), headers={"Authorization": "Bearer " + "t" * 20}) as api:
        opened = api.get(f"/task/{doc.id}/sources/{page.id}").json()
        assert opened["url"] == page.url and opened["screenshot"] is True
        slug = web.slug_of(page.url)
        assert slug is not None and web.pages[slug].text.split(".")[0] in opened["text"]
        shot = api.get(f"/task/{doc.id}/sources/{page.id}/screenshot.png")
        assert shot.headers["content-type"] == "image/png" and shot.content[:4] == b"\x89PNG"
        listed = api.get(f"/task/{doc.id}/sources/{hit.id}").json()
        assert listed["kind"] == "search" and listed["screenshot"] is False
        assert api.get(f"/task/{doc.id}/sources/{hit.id}/screenshot.png").status_code == 404
        assert api.get(f"/task/{doc.id}/sources/999").status_code == 404
