"""A goal that browses local pages, end to end: real Prefect server, real Chromium, fake model."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from core.progress import ProgressDocument
from flows.compound_goal import compound_goal
from services.progress import read_progress
from tasks import browse
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.web_pages import Canary, WebPages, chromium_processes, serve_pages

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def web() -> Iterator[tuple[WebPages, Canary]]:
    with serve_pages() as served:
        yield served
    browse.shutdown()
    assert chromium_processes() == []


@pytest.fixture
def pages(web: tuple[WebPages, Canary], settings_env: pytest.MonkeyPatch) -> WebPages:
    pages, canary = web
    pages.reset()
    canary.reset()
    settings_env.setenv("MISSION_BROWSE_ALLOW", pages.allow)  # these pages, nothing else local
    return pages


def progress(flow_run_id: UUID | None) -> ProgressDocument:
    async def read() -> ProgressDocument:
        async with get_client() as client:
            return await read_progress(client, str(flow_run_id))

    return asyncio.run(read())


def browse_step(id: str, url: str, instruction: str) -> dict[str, Any]:
    return {
        "id": id,
        "title": f"Look at {id}",
        "instruction": instruction,
        "kind": "browse",
        "tier": "vision",
        "url": url,
    }


def test_a_goal_browses_two_pages_in_parallel_and_compares_them(
    pages: WebPages, fake_anthropic: FakeAnthropic
) -> None:
    plan = [
        # Each page takes 0.5 s to serve, so their serving overlaps only if they run at once.
        browse_step("alpha", f"{pages.url}/page-a?delay=0.5", "What do Alpha widgets cost?"),
        browse_step("beta", f"{pages.url}/page-b?delay=0.5", "What do Beta widgets cost?"),
        {
            "id": "compare",
            "title": "Compare the widgets",
            "instruction": "Compare Alpha and Beta widgets on price and weight.",
            "kind": "synthesize",
            "tier": "deep",
            "depends_on": ["alpha", "beta"],
        },
    ]
    state = compound_goal(
        "Compare Alpha and Beta widgets", plan={"subtasks": plan}, return_state=True
    )
    assert state.is_completed(), state.message

    for id, seen in (("alpha", "Alpha widgets cost 3 euro"), ("beta", "Beta widgets cost 5 euro")):
        (call,) = fake_anthropic.calls_for(f"Subtask id: {id}\n")
        image, text = call.body["messages"][0]["content"]
        assert image["type"] == "image"
        assert base64.b64decode(image["source"]["data"]).startswith(PNG)
        assert seen in text["text"]
    (a_start, a_end), (b_start, b_end) = pages.times["/page-a"], pages.times["/page-b"]
    assert a_start < b_end and b_start < a_end, "the two pages were not browsed in parallel"

    (compare,) = fake_anthropic.calls_for("Subtask id: compare\n")
    assert '<dependency id="alpha">\noutput of alpha' in compare.prompt
    assert '<dependency id="beta">\noutput of beta' in compare.prompt
    assert "image" not in [block["type"] for block in compare.body["messages"][0]["content"]]

    doc = progress(state.state_details.flow_run_id)
    assert {s.id: (s.kind, s.state) for s in doc.subtasks} == {
        "alpha": ("browse", "Completed"),
        "beta": ("browse", "Completed"),
        "compare": ("synthesize", "Completed"),
    }
    assert [item.subtask for item in doc.learned][-1] == "join"


def test_a_blocked_page_fails_its_subtask_with_the_reason_and_skips_its_dependents(
    pages: WebPages, fake_anthropic: FakeAnthropic, web: tuple[WebPages, Canary]
) -> None:
    canary = web[1]
    plan = [
        browse_step("inside", f"{canary.url}/admin", "Read the admin page."),
        {
            "id": "report",
            "title": "Report",
            "instruction": "Report on it.",
            "kind": "write",
            "tier": "writer",
            "depends_on": ["inside"],
        },
    ]
    state = compound_goal("Read the admin page", plan={"subtasks": plan}, return_state=True)
    assert state.is_failed()
    doc = progress(state.state_details.flow_run_id)
    by_id = {s.id: s for s in doc.subtasks}
    assert by_id["inside"].state == "Failed"
    # The reason in words, without Prefect's "Task run encountered an exception" wording.
    assert by_id["inside"].error == (
        f"browse {canary.url}/admin: blocked: 127.0.0.1 is a loopback address"
    )
    assert by_id["report"].state == "Skipped"
    assert fake_anthropic.calls_for("Subtask id: inside\n") == []  # no model call either
    assert canary.contacts == []
