"""A goal run's result as files (GET /task/{id}/result.md and result.pdf) against the real
stack: the answer with its Sources list, and a PDF that pypdf reads the answer back from."""

from __future__ import annotations

import io
import time

import pytest
from prefect.client.orchestration import get_client
from pypdf import PdfReader

from flows.compound_goal import compound_goal
from services.exports import ResultFile, render_pdf, slug
from tests.api.conftest import Stack, follow, plan
from tests.fakes.anthropic_server import FakeAnthropic

JOIN = "Write the final answer to the goal"
ANSWER = """## Findings

Prices fell by **12 %** in Zürich — Ωmega and Жук agree.

- first point
- second point

See [the report](https://example.com/report) and run `mission doctor`.

```
total = 12
```"""


def test_a_goal_name_becomes_a_safe_file_name() -> None:
    assert slug("Compare Zürich & Genève: prices/rents (2024)!") == (
        "compare-zurich-geneve-prices-rents-2024"
    )
    assert slug('../../etc/passwd"; x') == "etc-passwd-x"
    assert slug("日本語") == "goal"
    assert len(slug("word " * 40)) <= 60


def test_the_pdf_renders_any_text_and_keeps_model_html_and_images_inert() -> None:
    from uuid import uuid4

    markdown = (
        "# Goal\n\n<script>x</script> 日本語 ✓ 😀 Ωmega\n\n![pixel](http://127.0.0.1:9/x.png)"
    )
    text = _pdf_text(render_pdf(ResultFile(uuid4(), "Goal", markdown)))
    assert "<script>x</script>" in text and "Ωmega" in text  # shown as text, not run


@pytest.mark.slow
def test_a_finished_goal_run_downloads_as_markdown_and_pdf(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on(JOIN, tool_input={"output": ANSWER, "learned": "prices fell"})
    goal = f"Compare Zürich prices {time.time_ns()}"
    with stack.client() as client:
        run_id = client.post("/task/compound", json={"goal": goal, "plan": plan(("a", []))}).json()[
            "id"
        ]
    assert follow(stack, run_id, "Completed")[-1]["state"] == "Completed"

    with stack.client() as client:
        md = client.get(f"/task/{run_id}/result.md")
        pdf = client.get(f"/task/{run_id}/result.pdf")
    assert md.status_code == 200, md.text
    assert md.headers["content-type"] == "text/markdown; charset=utf-8"
    stem = f"{slug(goal)}-{run_id[:8]}"
    assert md.headers["content-disposition"] == f'attachment; filename="{stem}.md"'
    assert md.text.startswith(f"# {goal}\n\n## Findings") and "Ωmega and Жук agree" in md.text

    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{stem}.pdf"'
    text = _pdf_text(pdf.content)
    for words in (goal, "Prices fell by 12 % in Zürich", "Ωmega and Жук agree", "second point"):
        assert words in text
    assert "total = 12" in text and "mission doctor" in text


@pytest.mark.slow
def test_downloads_need_auth_a_known_run_and_a_result(stack: Stack) -> None:
    with get_client(sync_client=True) as prefect:
        waiting = prefect.create_flow_run(compound_goal, parameters={"goal": "not run"}).id
    unknown = "00000000-0000-4000-8000-000000000000"
    with stack.client() as client:
        for name in ("result.md", "result.pdf"):
            early = client.get(f"/task/{waiting}/{name}")
            assert early.status_code == 409
            assert early.json()["detail"] == f"goal run {waiting} has no result yet (it is Pending)"
            assert client.get(f"/task/{unknown}/{name}").status_code == 404
    with stack.client(token=None) as anonymous:
        assert anonymous.get(f"/task/{waiting}/result.md").status_code == 401


def _pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
