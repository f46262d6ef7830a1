"""The /tasks page in a real browser (Debian's Chromium via Playwright) against `mission up`."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)
from pypdf import PdfReader

from core.local_server import PrefectServer
from core.progress import ProgressDocument
from core.timeline import WAIT_SHOWN_S, build_timeline
from tests.api.conftest import STACK_ENV, Stack, plan
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.research_web import serve_research_web
from tests.fakes.searxng import serve_searxng
from tests.stack import PASSWORD, free_port, start_stack, stop_stack

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
RUN_URL = re.compile(r"/tasks/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Set to a folder (e.g. docs/screenshots) to write the page's screenshots there (README).
SCREENSHOTS = os.environ.get("PAGE_SCREENSHOTS")
expect.set_options(timeout=20_000)  # a goal run takes ~3 s to start on the runner
UNTRUSTED_RESULT = """## Findings

<script>window.__pwned=1</script> **bold** and *calm*

- one
- two

[the docs](https://example.com/docs) and [a trap](javascript:window.__pwned=3)

```
<img src=x onerror="window.__pwned=2">
```"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # a browser test that is skipped proves nothing
        pytest.fail("needs Debian's Chromium at /usr/bin/chromium (scripts/setup installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


def _new_page(browser: Browser, stack: Stack, **options: Any) -> Iterator[Page]:
    """A page in a fresh context; fails the test on a script error or a CSP violation."""
    context = browser.new_context(base_url=stack.url, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"CSP violation: {message.text}")

    page.on("console", console)
    yield page
    context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    yield from _new_page(
        browser,
        stack,
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Iterator[Page]:
    yield from _new_page(browser, stack, viewport={"width": 390, "height": 844}, is_mobile=True)


def log_in(page: Page, path: str = "/tasks") -> None:
    """Open `path`, get sent to the login form, log in, and land back on `path`."""
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


def script_plan(fake: FakeAnthropic, steps: list[Any], learned: Callable[[str, str], str]) -> None:
    """The planner's next plan: (id, title, kind, tier, depends_on, delay_s) per subtask, each
    answering "<title>: done." after its delay with the learned line `learned(id, title)`."""
    fake.enqueue_plan(
        {
            "subtasks": [
                {"id": i, "title": t, "instruction": t, "kind": k, "tier": tier, "depends_on": d}
                for i, t, k, tier, d, _ in steps
            ]
        }
    )
    for sid, title, *_, delay in steps:
        fake.on(
            f"Subtask id: {sid}",
            delay=delay,
            tool_input={"output": f"{title}: done.", "learned": learned(sid, title)},
        )


def node(page: Page, subtask: str) -> Any:
    return page.locator(f'#dag [data-subtask="{subtask}"]')


def test_page_sends_visitors_without_a_session_to_the_login_form(page: Page, stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as anonymous:
        home = anonymous.get("/")
        tasks = anonymous.get("/tasks")
        one = anonymous.get("/tasks/0b3f7c7e-8a0c-4a55-9a4a-6f0d2f4c1e11")
    assert (home.status_code, home.headers["location"]) == (303, "/tasks")
    assert (tasks.status_code, tasks.headers["location"]) == (303, "/login?next=%2Ftasks")
    assert one.headers["location"] == "/login?next=%2Ftasks%2F0b3f7c7e-8a0c-4a55-9a4a-6f0d2f4c1e11"

    page.goto("/tasks")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Ftasks$"))
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong password")
    expect(page.locator("#goal")).to_have_count(0)

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/tasks$"))
    expect(page.get_by_label("What should be done?")).to_be_visible()
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf and len(csrf) >= 16

    not_an_id = page.goto("/tasks/not-a-goal-run")
    assert not_an_id is not None and not_an_id.status == 404
    expect(page.locator(".notice")).to_contain_text("does not name a goal run")
    unknown = "0b3f7c7e-8a0c-4a55-9a4a-6f0d2f4c1e11"
    page.goto(f"/tasks/{unknown}")
    expect(page.locator("#run-error")).to_have_text(f"No goal run has id {unknown}.")


def test_refused_goal_is_explained_next_to_the_form(page: Page) -> None:
    log_in(page)
    form = page.locator("#goal-form")
    form.get_by_role("button", name="Submit").click()
    expect(form.get_by_role("alert")).to_have_text("Write a goal first.")

    form.get_by_label("What should be done?").fill("x" * 4001)
    form.get_by_text("Budget").click()
    form.get_by_label("Max tokens").fill("1.5")
    form.get_by_role("button", name="Submit").click()
    expect(form.get_by_role("alert")).to_contain_text("Max tokens: enter a whole number")

    form.get_by_label("Max tokens").fill("5000")
    form.get_by_role("button", name="Submit").click()
    expect(form.get_by_role("alert")).to_have_text(
        "Not submitted. The goal is 4001 characters; the limit is 4000."
    )
    expect(page).to_have_url(re.compile(r"/tasks$"))  # nothing was started
    expect(page.locator("#goal")).to_have_value("x" * 4001)  # nothing typed is lost


def test_submitted_goal_updates_the_dag_live_and_renders_untrusted_output_as_text(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(plan(("x", []), ("y", ["x"]), ("z", ["x"])))
    fake_anthropic.on(
        "Subtask id: x",
        tool_input={
            "output": "<script>window.__pwned=1</script> **bold**",
            "learned": "x found <b>two</b> facts",
        },
    )
    fake_anthropic.on("Subtask id: y", delay=1.5)
    fake_anthropic.on(
        "Write the final answer", tool_input={"output": UNTRUSTED_RESULT, "learned": "joined"}
    )
    log_in(page)
    page.evaluate("window.__sameDocument = true")

    page.get_by_label("What should be done?").fill("compare three things")
    page.get_by_role("button", name="Submit").click()

    expect(page).to_have_url(RUN_URL)
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(node(page, "y")).to_have_attribute("data-state", "Running")
    expect(node(page, "x")).to_have_attribute("data-state", "Completed")
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    expect(node(page, "y")).to_have_attribute("data-state", "Completed")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded

    learned = page.locator("#learned li")
    expect(learned).to_have_count(4)  # x, y, z and the join
    expect(learned.first).to_contain_text("x found <b>two</b> facts")
    expect(page.locator("#subtasks tbody tr")).to_have_count(3)
    assert page.locator("#stat-tokens").inner_text() != "0"

    result = page.locator("#result")
    expect(result.locator("h2")).to_have_text("Findings")
    expect(result).to_contain_text("<script>window.__pwned=1</script>")
    expect(result.locator("strong")).to_have_text("bold")
    expect(result.locator("li")).to_have_count(2)
    link = result.locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert result.locator("script, img").count() == 0
    assert page.evaluate("window.__pwned") is None

    page.locator('#subtasks tbody tr[data-subtask="x"]').click()
    detail = page.locator("#subtask-detail")
    expect(detail.locator("#detail-learned")).to_have_text("Learned: x found <b>two</b> facts")
    output = detail.locator("#detail-output")
    expect(output).to_contain_text("<script>window.__pwned=1</script>")
    expect(output.locator("strong")).to_have_text("bold")
    assert detail.locator("script").count() == 0

    page.locator("#copy-run-id").click()
    assert page.evaluate("navigator.clipboard.readText()") == run_id
    history = page.locator(f'#history a[data-run="{run_id}"]')
    expect(history).to_have_attribute("aria-current", "page")
    expect(history.locator(".pill")).to_have_text("Completed")
    assert page.evaluate("window.__pwned") is None


def test_cancel_button_stops_a_running_goal_run(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    # Long enough for the page to load and see s1 running on a loaded machine; the cancel
    # ends it at once anyway.
    fake_anthropic.on("Subtask id: s1", delay=15.0)
    run_id = stack.submit(goal="a long chain", plan=plan(("s1", []), ("s2", ["s1"])))
    log_in(page, f"/tasks/{run_id}")
    expect(node(page, "s1")).to_have_attribute("data-state", "Running")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()

    expect(page.locator("#cancel-status")).to_have_text("Cancelling…")
    expect(page.locator("#run-state")).to_have_text("Cancelled", timeout=30_000)
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#cancel-status")).to_be_hidden()
    expect(node(page, "s2")).not_to_have_attribute("data-state", "Completed")
    assert not fake_anthropic.calls_for("Subtask id: s2")


def test_retry_button_runs_a_failed_goal_run_again_and_follows_it_live(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: flaky\n", times=1, status=400)
    run_id = stack.submit(goal="fails once", plan=plan(("steady", []), ("flaky", ["steady"])))
    log_in(page, f"/tasks/{run_id}")
    expect(page.locator("#run-state")).to_have_text("Failed", timeout=30_000)
    expect(node(page, "flaky")).to_have_attribute("data-state", "Failed")

    page.get_by_role("button", name="Retry run").click()
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=30_000)
    expect(node(page, "steady")).to_have_attribute("data-state", "Cached")
    expect(node(page, "flaky")).to_have_attribute("data-state", "Completed")
    expect(page.locator("#retry")).to_be_hidden()
    assert len(fake_anthropic.calls_for("Subtask id: steady\n")) == 1


def test_plan_approval_shows_the_plan_refuses_a_bad_edit_and_runs_once_approved(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(plan(("first", []), ("second", ["first"])))
    log_in(page)
    page.get_by_label("What should be done?").fill("plan then ask me")
    page.get_by_label("Ask me to approve the plan").check()
    page.get_by_role("button", name="Submit").click()

    approval = page.locator("#approval")
    expect(page.locator("#run-state")).to_have_text("Paused", timeout=30_000)
    expect(approval).to_be_visible()
    expect(approval.locator("#approval-plan li")).to_have_count(2)
    expect(approval.locator("#approval-plan")).to_contain_text("second")
    expect(approval.locator("#approval-forecast")).to_have_text(re.compile(r"^Forecast cost: \$"))
    expect(approval.locator("#approval-forecast-note")).to_contain_text("token counts")
    assert fake_anthropic.calls_for("Subtask id:") == []  # nothing ran before approval

    approval.get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Plan (JSON)")
    expect(editor).to_have_value(re.compile(r'"instruction": "do first"'))  # the real plan
    edited = json.loads(editor.input_value())
    edited["subtasks"][0]["depends_on"] = ["second"]  # second already depends on first
    editor.fill(json.dumps(edited))
    approval.get_by_role("button", name="Approve edited plan").click()
    expect(approval.locator("#approval-error")).to_contain_text("cycle")
    expect(page.locator("#run-state")).to_have_text("Paused")

    edited["subtasks"] = [{**edited["subtasks"][1], "depends_on": []}]  # only "second"
    editor.fill(json.dumps(edited))
    approval.get_by_role("button", name="Approve edited plan").click()
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    expect(approval).to_be_hidden()
    expect(node(page, "second")).to_have_attribute("data-state", "Completed")
    assert not fake_anthropic.calls_for("Subtask id: first")


def first_running_event(stack: Stack, run_id: str) -> tuple[str, str]:
    """The id and data of the run's first progress message showing a subtask running."""
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=30) as response,
    ):
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                field, _, value = line.partition(": ")
                event[field] = value
                continue
            if event.get("event") == "progress":
                doc = json.loads(event["data"])
                if any(s["state"] == "Running" for s in doc["subtasks"]):
                    return event["id"], event["data"]
            event = {}
    raise AssertionError("no subtask of the goal run was seen running")


def test_dropped_event_stream_shows_reconnecting_and_the_run_still_completes(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: a", delay=3.0)
    run_id = stack.submit(goal="survive a dropped stream", plan=plan(("a", []), ("b", ["a"])))
    connections: list[str] = []

    def drop_the_first_stream(route: Route) -> None:
        """The first stream delivers one document from mid-run, then the connection ends."""
        connections.append(route.request.url)
        if len(connections) > 1:
            # Chromium adds Last-Event-ID below this layer, so it is not visible here.
            route.continue_()
            return
        version, data = first_running_event(stack, run_id)
        body = f"retry: 2500\n\nid: {version}\nevent: progress\ndata: {data}\n\n"
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.route(f"**/task/{run_id}/events", drop_the_first_stream)
    log_in(page, f"/tasks/{run_id}")

    expect(node(page, "a")).to_have_attribute("data-state", "Running")
    expect(page.locator("#connection")).to_have_text("Reconnecting…")
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    expect(node(page, "b")).to_have_attribute("data-state", "Completed")
    expect(page.locator("#connection")).not_to_have_text("Reconnecting…")
    assert len(connections) >= 2  # the browser reconnected by itself


def test_page_fits_a_phone_screen(phone: Page, stack: Stack) -> None:
    run_id = stack.submit(
        goal="a wide plan on a narrow screen",
        plan=plan(("alpha", []), ("beta", ["alpha"]), ("gamma", ["alpha"]), ("delta", ["beta"])),
    )
    log_in(phone, f"/tasks/{run_id}")
    expect(phone.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    widths = phone.evaluate(
        "[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
    )
    assert max(widths[:2]) <= widths[2], widths  # nothing sticks out sideways
    table = phone.locator("#subtasks").locator("..")
    assert table.evaluate("e => e.scrollWidth > e.clientWidth")  # the table scrolls instead
    run_box = phone.locator("#run-view").bounding_box()
    form_box = phone.locator("#goal-form").bounding_box()
    assert run_box and form_box and run_box["y"] < form_box["y"]  # the open run comes first


def test_screenshots_of_a_running_and_a_finished_goal_run(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    steps = [
        ("scope", "Define the market and the criteria", "extract", "fast", [], 0.6),
        ("competitors", "Find the five main competitors", "extract", "fast", ["scope"], 1.0),
        ("pricing", "Compare their pricing", "structure", "structured", ["competitors"], 4.0),
        ("features", "Compare their features", "extract", "fast", ["competitors"], 3.5),
        ("reviews", "Summarise customer reviews", "extract", "fast", ["competitors"], 3.0),
        ("positioning", "Assess positioning", "synthesize", "deep", ["pricing", "features"], 1),
        ("summary", "Write the summary", "write", "writer", ["positioning", "reviews"], 0.5),
    ]
    script_plan(fake_anthropic, steps, lambda sid, title: LEARNED[sid])
    fake_anthropic.on(
        "Write the final answer", tool_input={"output": SUMMARY, "learned": "summary written"}
    )
    log_in(page)
    page.get_by_label("What should be done?").fill(
        "Research the top 5 competitors in this space and write a summary"
    )
    page.get_by_role("button", name="Submit").click()
    expect(node(page, "features")).to_have_attribute("data-state", "Running", timeout=30_000)
    expect(node(page, "pricing")).to_have_attribute("data-state", "Running")
    time.sleep(1.2)
    page.screenshot(path=str(folder / "tasks-running.png"))
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    page.screenshot(path=str(folder / "tasks-finished.png"))
    running, finished = ((folder / f"tasks-{s}.png").read_bytes() for s in ("running", "finished"))
    viewport = page.viewport_size
    assert viewport is not None
    for shot in (running, finished):  # PNGs of the whole viewport (IHDR width and height)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        size = (int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big"))
        assert size == (viewport["width"], viewport["height"])
    assert running != finished  # the page changed between the two


def test_the_running_subtasks_text_grows_on_the_page_as_its_model_writes_it(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    steps = [
        ("scope", "Define the market and the criteria", "extract", "fast", [], 0.5),
        ("features", "Compare their features", "extract", "fast", ["scope"], 6.0),
        ("reviews", "Summarise customer reviews", "extract", "fast", ["scope"], 6.0),
    ]
    for sid in ("features", "reviews"):  # long answers, written over 6 s in 30 pieces
        answer = {"output": WRITTEN[sid], "learned": LEARNED[sid]}
        fake_anthropic.on(f"Subtask id: {sid}", delay=6.0, tool_input=answer)
    script_plan(fake_anthropic, steps, lambda sid, title: LEARNED[sid])  # first rule wins
    fake_anthropic.stream_chunks = 30
    log_in(page)
    page.get_by_label("What should be done?").fill("Compare the features and reviews of five tools")
    page.get_by_role("button", name="Submit").click()
    row = page.locator('#subtasks tr[data-subtask="features"]')
    expect(row).to_have_attribute("data-state", "Running", timeout=30_000)
    row.click()
    streamed = page.locator("#detail-output pre.streaming")
    expect(streamed).not_to_be_empty(timeout=10_000)
    first = streamed.inner_text()
    time.sleep(1.5)
    later = streamed.inner_text()
    # It grows, as a prefix of the whole answer, while the subtask still runs.
    assert len(later) > len(first) > 0 and later.startswith(first), (first, later)
    assert WRITTEN["features"].startswith(later.rstrip())
    expect(row).to_have_attribute("data-state", "Running")
    expect(row.locator(".stream")).to_be_visible()
    assert row.locator(".stream").inner_text().strip()  # the row shows its last line
    time.sleep(1.0)
    page.locator("#subtask-detail").scroll_into_view_if_needed()
    page.screenshot(path=str(folder / "tasks-streaming.png"))
    # Once it completes, the detail shows the output (rendered) and the row's line is gone.
    expect(row).to_have_attribute("data-state", "Completed", timeout=30_000)
    expect(page.locator("#detail-output")).to_contain_text("Offline sync", timeout=10_000)
    expect(row.locator(".stream")).to_be_hidden()


WRITTEN = {
    "features": "## Features\n\n"
    + "\n".join(
        f"- **{name}**: Offline sync, {extra}."
        for name, extra in [
            ("Northwind", "full-text search across every workspace, and a fast desktop app"),
            ("Fabrikam", "end-to-end encryption for every note, with keys held by the customer"),
            ("Contoso", "a free tier for small teams, templates and a public API"),
            ("Litware", "end-to-end encryption and a self-hosted option for regulated teams"),
            ("Tailspin", "a mobile-first editor whose Android app reviewers call slow"),
        ]
    )
    + "\n",
    "reviews": "## Reviews\n\n"
    + " ".join(f"Reviewer {i} praises search and asks for a better mobile app." for i in range(8))
    + "\n",
}


LEARNED = {
    "scope": "The market is B2B note-taking tools for teams of 10-500 people.",
    "competitors": "Five competitors stand out: Northwind, Fabrikam, Contoso, Litware, Tailspin.",
    "pricing": "Prices range from $6 to $15 per seat a month; only Contoso has a free tier.",
    "features": "All five sync offline; only Fabrikam and Litware offer end-to-end encryption.",
    "reviews": "Reviewers praise Northwind's search and complain about Tailspin's mobile app.",
    "positioning": "Northwind leads on search, Fabrikam on security, Contoso on price.",
    "summary": "A one-page summary with a comparison table and three recommendations.",
}
SUMMARY = """## Top 5 competitors

Five products compete for teams of 10-500 people. **Northwind** leads on search,
**Fabrikam** on security and **Contoso** on price.

| Product | From (seat/month) | Encryption | Free tier |
|---|---|---|---|
| Northwind | $12 | at rest | no |
| Fabrikam | $15 | end-to-end | no |
| Contoso | $6 | at rest | yes |
| Litware | $10 | end-to-end | no |
| Tailspin | $8 | at rest | no |

### Recommendations

1. Match Contoso's free tier for teams under 10.
2. Ship end-to-end encryption before the next pricing change.
3. Invest in mobile: it is the most common complaint about *Tailspin*.
"""


def test_page_lists_recurring_goals_and_pauses_and_adds_one(page: Page, stack: Stack) -> None:
    with stack.client() as client:
        sid = client.post("/schedules", json={"goal": "weekly digest", "cron": "0 8 * * 1"})
        sid.raise_for_status()
    try:
        log_in(page)
        item = page.locator(f'#schedules [data-schedule="{sid.json()["id"]}"]')
        expect(item).to_contain_text("weekly digest")
        expect(item).to_contain_text("cron 0 8 * * 1")
        item.get_by_role("button", name="Pause").click()
        expect(item).to_have_attribute("data-active", "false")
        page.locator(".schedule-add summary").click()
        page.get_by_label("Goal", exact=True).fill("hourly check")
        page.get_by_label("When: a cron expression, or every N seconds").fill("3600")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#schedules")).to_contain_text("every 3600 s")
    finally:
        with stack.client() as client:
            for schedule in client.get("/schedules").json()["items"]:
                client.delete(f"/schedules/{schedule['id']}")


def test_the_page_resumes_after_the_api_is_killed_and_started_again(
    browser: Browser, prefect_server: str, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    # An API process of its own (the session stack's runner runs the goal), so killing it
    # harms no other test; one session secret across its restart, as replicas share one.
    env = {
        **STACK_ENV,
        "MISSION_API_ONLY": "true",
        "MISSION_PORT": str(free_port()),
        "MISSION_SESSION_SECRET": "a-session-secret-shared-across-restarts-0123456789",
    }
    api = start_stack(prefect_server, **env)
    fake_anthropic.on("Subtask id: a\n", delay=4.0)
    run_id = api.submit(goal="outlive the API", plan=plan(("a", []), ("b", ["a"]), ("c", ["b"])))
    pages = _new_page(browser, api, viewport={"width": 1280, "height": 900})
    page = next(pages)
    try:
        log_in(page, f"/tasks/{run_id}")
        expect(node(page, "a")).to_have_attribute("data-state", "Running")
        api.process.kill()  # SIGKILL: no goodbye on the open event stream
        api.process.wait()
        expect(page.locator("#connection")).to_have_text("Reconnecting…")
        api = start_stack(prefect_server, **env)  # same port, same session secret

        expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
        for subtask in "abc":
            expect(node(page, subtask)).to_have_attribute("data-state", "Completed")
        # Nothing missed while the API was down: every learned line, in completion order.
        expect(page.locator("#learned .learned-subtask")).to_have_text(["a", "b", "c", "join"])
        expect(page.locator("#result")).not_to_be_empty()
        expect(page.locator("#connection")).not_to_have_text("Reconnecting…")
    finally:
        next(pages, None)  # closes the page; fails on a script error or a CSP violation
        stop_stack(api)


@pytest.fixture(scope="module")
def research_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`mission up` on the simulated provider with a fake SearXNG over a loopback web, on a
    Prefect server and MISSION_HOME of its own (the session's stack serves the same
    deployment there, with the fake model)."""
    home = tmp_path_factory.mktemp("research-prefect")
    server = PrefectServer(home=home, port=free_port()).start()
    try:
        with serve_research_web() as web, serve_searxng(web) as search:
            running = start_stack(
                server.api_url,
                MISSION_HOME=str(tmp_path_factory.mktemp("research-home")),
                MISSION_PROVIDER="simulated",
                MISSION_SIMULATED_LATENCY_MS="default=150",
                MISSION_SEARCH_URL=search.url,
                MISSION_BROWSE_ALLOW=web.allow,
            )
            yield running
            stop_stack(running)
    finally:
        server.stop()


def test_a_finished_research_goal_run_lists_its_sources_and_opens_a_cited_one(
    browser: Browser, research_stack: Stack, tmp_path: Path
) -> None:
    page = next(_new_page(browser, research_stack, viewport={"width": 1280, "height": 1400}))
    log_in(page)
    page.get_by_label("What should be done?").fill(
        "Research the top 3 makers of electric cargo bikes and write a summary"
    )
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=90_000)
    rows = page.locator("#sources li[data-source]")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 4  # the search's hits and the three pages read
    expect(page.locator("#citations")).to_contain_text("verified")
    expect(page.locator("#citations")).not_to_contain_text("flagged")
    cite = page.locator("#result button.cite").first
    expect(cite).to_be_visible()
    cited = cite.get_attribute("data-source")
    cite.click()
    detail = page.locator("#source-detail")
    expect(detail).to_be_visible()
    expect(page.locator("#source-text")).not_to_be_empty()
    expect(page.locator("#source-screenshot")).to_be_visible()  # a cited source is a page read
    with research_stack.client() as client:
        run_id = page.url.rsplit("/", 1)[1]
        source = client.get(f"/task/{run_id}/sources/{cited}").json()
    expect(page.locator("#source-title")).to_have_text(f"[{cited}] {source['title']}")
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.locator("#result").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.wheel(0, -60)  # the card's top clear of the sticky header
    page.screenshot(path=str(folder / "tasks-research.png"))
    assert (folder / "tasks-research.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.context.close()


def test_the_dag_grows_live_when_the_plan_is_revised(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(
        plan(("scope", []), ("fetch", ["scope"]), ("report", ["fetch"]), tier="fast")
    )
    fake_anthropic.on("Subtask id: fetch\n", status=400)
    fake_anthropic.on(
        "Revise the plan",
        delay=1.5,  # the page sees the failure before the revision
        tool_input={
            "subtasks": [
                {
                    "id": "fetch_alt",
                    "title": "Fetch another way",
                    "instruction": "do fetch another way",
                    "kind": "extract",
                    "tier": "fast",
                    "depends_on": ["scope"],
                    "replaces": "fetch",
                }
            ]
        },
    )
    log_in(page)
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("What should be done?").fill("A goal whose plan will be revised")
    page.get_by_role("button", name="Submit").click()
    expect(node(page, "fetch")).to_have_attribute("data-state", "Failed", timeout=30_000)
    assert node(page, "fetch_alt").count() == 0
    expect(node(page, "fetch_alt")).to_be_visible()  # a new node, drawn live
    expect(node(page, "fetch_alt")).to_have_class(re.compile(r"\badded\b"))
    expect(node(page, "fetch")).to_have_class(re.compile(r"\breplaced\b"))
    expect(node(page, "fetch")).to_contain_text("replaced by fetch_alt")
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)
    expect(node(page, "report")).to_have_attribute("data-state", "Completed")
    assert page.evaluate("window.__sameDocument") is True  # no reload


def test_the_timeline_shows_a_bar_per_subtask_with_the_critical_path_and_the_spend(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    # The structured tier has one slot (STACK_ENV): "pricing" and "features" both wait for
    # "scope", so one of them waits for the other's slot too, and ends last of the two.
    steps = [
        ("scope", "Define the market", "extract", "fast", [], 0.5),
        ("pricing", "Compare their pricing", "structure", "structured", ["scope"], 1.2),
        ("features", "Compare their features", "structure", "structured", ["scope"], 1.2),
        ("reviews", "Summarise reviews", "extract", "fast", ["scope"], 0.4),
        ("summary", "Write it up", "write", "writer", ["pricing", "features", "reviews"], 0.5),
    ]
    script_plan(fake_anthropic, steps, lambda sid, title: f"{title} done")
    log_in(page)
    page.get_by_label("What should be done?").fill("Compare the competitors on a timeline")
    page.locator("details.budget summary").click()
    page.get_by_label("Max cost (USD)").fill("5")
    page.get_by_role("button", name="Submit").click()
    timeline = page.locator("#timeline")
    expect(timeline.locator('[data-subtask="scope"]')).to_be_visible(timeout=30_000)  # grows live
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)

    bars = timeline.locator("rect.tl-bar")
    expect(bars).to_have_count(len(steps))
    drawn = sorted(bars.evaluate_all("rs => rs.map(r => r.dataset.subtask)"))
    assert drawn == sorted(s[0] for s in steps)  # one bar per subtask
    critical = bars.evaluate_all("rs => rs.filter(r => r.dataset.critical === 'true')")
    run_id = page.url.rsplit("/", 1)[-1]
    doc = page.evaluate(f"fetch('/task/{run_id}/progress').then(r => r.json())")
    second = max(
        (s for s in doc["subtasks"] if s["tier"] == "structured"), key=lambda s: s["ended_at"]
    )["id"]
    assert len(critical) == 3
    expect(timeline).to_have_attribute(
        "aria-label", f"Timeline of the goal run; critical path: scope → {second} → summary"
    )
    expect(timeline.locator(f'[data-subtask="{second}"][data-critical="true"]')).to_have_count(1)
    # Waits are hatched where the document has them, by the same rule as `mission run
    # --timeline` (a subtask started later than its last dependency ended). A slot's wait is
    # inside its bar (its task run waits Running), so on a quiet machine there may be none.
    drawn_doc = build_timeline(ProgressDocument.model_validate(doc), datetime.now(UTC))
    waits = [b for lane in drawn_doc.lanes for b in lane.bars if b.waited > WAIT_SHOWN_S]
    expect(timeline.locator(".tl-wait")).to_have_count(len(waits))
    lane = timeline.locator('.tl-lane[data-tier="structured"]')
    expect(lane.locator(".tl-lane-limit")).to_have_text("limit 1")

    # Spend: against the $5 budget, and per tier.
    expect(page.locator("#budget-meter-text")).to_contain_text("of $5.00")
    tiers = page.locator("#tier-spend li")
    expect(tiers).to_have_count(len(doc["usage"]["by_tier"]))
    expect(page.locator('#tier-spend li[data-tier="structured"]')).to_contain_text("$")

    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.locator("#timeline-card").screenshot(path=str(folder / "timeline.png"))
    page.locator("#cost-card").screenshot(path=str(folder / "spend.png"))
    assert (folder / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_result_downloads_as_markdown_and_pdf_from_the_page(
    page: Page, stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on(
        "Write the final answer",
        tool_input={"output": "## Findings\n\nRents rose in Zürich — Жук.", "learned": "rose"},
    )
    run_id = stack.submit(goal="rents in two cities", plan=plan(("rents", [])))
    log_in(page, f"/tasks/{run_id}")
    expect(page.locator("#run-state")).to_have_text("Completed", timeout=60_000)

    card = page.locator("#result-card")
    with page.expect_download() as markdown:
        card.get_by_role("link", name="Download Markdown").click()
    assert markdown.value.suggested_filename == f"rents-in-two-cities-{run_id[:8]}.md"
    saved = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert saved.startswith("# rents in two cities\n\n## Findings") and "Zürich — Жук" in saved

    with page.expect_download() as pdf:
        card.get_by_role("link", name="Download PDF").click()
    assert pdf.value.suggested_filename == f"rents-in-two-cities-{run_id[:8]}.pdf"
    reader = PdfReader(pdf.value.path())
    assert "Rents rose in Zürich — Жук." in reader.pages[0].extract_text()
