"""The service end to end: `mission up` serving the deployment, driven over HTTP."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.conftest import (
    STACK_ENV,
    Stack,
    follow,
    plan,
    stream_events,
    streamed_text,
    wait_until_called,
)
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import start_stack, stop_stack

pytestmark = pytest.mark.slow


def test_submitted_goal_streams_progress_until_a_completed_document(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(plan(("a", []), ("b", ["a"]), ("c", ["a"])))
    fake_anthropic.on("Subtask id: a", delay=1.0)  # long enough to be seen running
    with stack.client() as client:
        created = client.post("/task/compound", json={"goal": "compare three things"})
    assert created.status_code == 202
    body = created.json()
    assert len(body["id"]) == 36 and body["events_url"].endswith(f"/task/{body['id']}/events")

    docs = follow(stack, body["id"])

    states = [d["state"] for d in docs]
    assert states[-1] == "Completed"
    assert "Running" in states  # pushed while it ran, not only at the end
    seen_running = {s["id"] for d in docs for s in d["subtasks"] if s["state"] == "Running"}
    assert "a" in seen_running  # pushed live, not only at the end
    final = docs[-1]
    assert final["counts"] == {
        "total": 3, "pending": 0, "running": 0, "completed": 3,
        "failed": 0, "cancelled": 0, "skipped": 0,
    }  # fmt: skip
    assert {item["subtask"] for item in final["learned"]} == {"a", "b", "c", "join"}
    assert final["result"] and final["usage"]["input_tokens"] > 0
    with stack.client() as client:
        progress = client.get(f"/task/{body['id']}/progress").json()
    assert progress["state"] == "Completed" and progress["result"] == final["result"]
    with stack.client() as client:
        detail = client.get(f"/task/{body['id']}/subtasks/b").json()
        missing = client.get(f"/task/{body['id']}/subtasks/zz")
        malformed = client.get(f"/task/{body['id']}/subtasks/Not%20A%20Slug")
    assert detail == {
        "id": "b", "state": "Completed", "learned": "b learned something",
        "output": "output of b", "error": None,
    }  # fmt: skip
    assert missing.status_code == 404 and "'zz'" in missing.json()["detail"]
    assert malformed.status_code == 422
    # Each message is a change: no two consecutive documents are the same.
    assert all(a != b for a, b in itertools.pairwise(docs))


def test_event_stream_resumes_from_last_event_id_and_sends_heartbeats(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: slow", delay=2.5)
    run_id = stack.submit(goal="one slow step", plan=plan(("slow", [])))
    with stack.client() as client:
        first = client.get(f"/task/{run_id}/progress").json()
    lines: list[str] = []
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=60) as response,
    ):
        for line in response.iter_lines():
            lines.append(line)
            if line == "event: end":
                break
    assert ": heartbeat" in lines  # the 2.5 s subtask outlasts the 1 s heartbeat
    ids = [line.removeprefix("id: ") for line in lines if line.startswith("id: ")]
    assert ids and first  # every progress message carries an id

    # Reconnecting with the last id: the client already has the final document.
    with (
        stack.client() as client,
        client.stream(
            "GET", f"/task/{run_id}/events", headers={"Last-Event-ID": ids[-1]}, timeout=30
        ) as response,
    ):
        again = list(response.iter_lines())
    assert "event: progress" not in again and "event: end" in again


def test_cancel_stops_model_calls_and_frees_the_tier_slot(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    # structured=1 in this stack: the chain holds the tier's only slot while s1 runs.
    fake_anthropic.on("Subtask id: s1", delay=4.0)
    run_id = stack.submit(
        goal="a long chain",
        plan=plan(("s1", []), ("s2", ["s1"]), ("s3", ["s2"]), tier="structured"),
    )
    wait_until_called(fake_anthropic, "Subtask id: s1", within_s=60)
    with stack.client() as client:
        cancelled = client.post(f"/task/{run_id}/cancel")
    asked = time.time()
    assert cancelled.status_code == 202, cancelled.text

    docs = follow(stack, run_id, timeout=60)
    assert docs[-1]["state"] == "Cancelled"
    time.sleep(1.0)
    assert [c for c in fake_anthropic.calls if c.start > asked] == []
    assert not fake_anthropic.calls_for("Subtask id: s2")
    # The killed run's slot came back: a new run on the same tier completes.
    again = stack.submit(goal="after the cancel", plan=plan(("after", []), tier="structured"))
    assert follow(stack, again, timeout=60)[-1]["state"] == "Completed"


def test_retry_reruns_a_failed_goal_run_reusing_its_plan_and_finished_subtasks(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue_plan(plan(("a", []), ("b", ["a"]), ("c", ["b"])))
    fake_anthropic.on("Subtask id: b\n", times=1, status=400)  # not retried: b fails once
    with stack.client() as client:
        run_id = client.post("/task/compound", json={"goal": "try twice"}).json()["id"]
    failed = follow(stack, run_id)[-1]
    assert failed["state"] == "Failed"
    assert {s["id"]: s["state"] for s in failed["subtasks"]} == {
        "a": "Completed", "b": "Failed", "c": "Skipped",
    }  # fmt: skip

    with stack.client() as client:
        retried = client.post(f"/task/{run_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["state"] == "Scheduled"
        again = client.post(f"/task/{run_id}/retry")  # already scheduled again
    assert again.status_code == 409
    final = follow(stack, run_id)[-1]
    assert final["state"] == "Completed", final["message"]
    assert {s["id"]: s["state"] for s in final["subtasks"]} == {
        "a": "Cached", "b": "Completed", "c": "Completed",
    }  # fmt: skip
    planner_calls = [
        c
        for c in fake_anthropic.calls
        if c.body.get("tool_choice", {}).get("name") == "submit_plan"
    ]
    assert len(planner_calls) == 1  # the retry took the plan it had made
    calls = {i: len(fake_anthropic.calls_for(f"Subtask id: {i}\n")) for i in "abc"}
    assert calls == {"a": 1, "b": 2, "c": 1}
    assert final["result"] and "c" in {item["subtask"] for item in final["learned"]}

    with stack.client() as client:
        done = client.post(f"/task/{run_id}/retry")
        unknown = client.post("/task/00000000-0000-0000-0000-000000000000/retry")
    assert done.status_code == 409
    assert "only a Failed, Crashed or Cancelled goal run can be retried" in done.json()["detail"]
    assert unknown.status_code == 404


def test_same_idempotency_key_gives_the_same_run_never_two(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    body = {"goal": "idempotent goal", "plan": plan(("only", []))}
    headers = {"Idempotency-Key": f"key-{time.time()}"}

    def post() -> str:
        with stack.client() as client:
            response = client.post("/task/compound", json=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(lambda _: post(), range(4)))
    ids.add(post())
    assert len(ids) == 1
    with stack.client() as client:
        other = client.post(
            "/task/compound", json={**body, "goal": "something else"}, headers=headers
        )
        assert other.status_code == 422
        assert "Idempotency-Key" in other.json()["detail"]
        # Another client's identical key is its own request.
        with stack.client("second-token-abcdef") as second:
            theirs = second.post("/task/compound", json=body, headers=headers)
        assert theirs.status_code == 202 and theirs.json()["id"] not in ids
    for run_id in (*ids, theirs.json()["id"]):
        assert follow(stack, run_id)[-1]["state"] == "Completed"


def test_approval_pauses_after_planning_and_runs_the_edited_plan(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    run_id = stack.submit(
        goal="plan then ask", plan=plan(("first", []), ("second", ["first"])), approve=True
    )
    paused = follow(stack, run_id, until="Paused")[-1]
    assert [s["id"] for s in paused["subtasks"]] == ["first", "second"]
    assert fake_anthropic.calls == []  # nothing runs before approval
    # While it waits, the document forecasts what the plan (two subtasks and the join) costs.
    forecast = paused["forecast"]
    # A range, unless the session's earlier goal runs (the fake answers every call with the
    # same usage) taught it token counts that do not vary: then low and high are equal.
    assert 0 < forecast["low_usd"] <= forecast["high_usd"], forecast
    assert forecast["basis"] and forecast["unpriced"] == []
    with stack.client() as client:
        shown = client.get(f"/task/{run_id}/plan").json()
        assert shown["goal"] == "plan then ask"
        assert [(s["id"], s["instruction"], s["depends_on"]) for s in shown["subtasks"]] == [
            ("first", "do first", []),
            ("second", "do second", ["first"]),
        ]
        bad = client.post(
            f"/task/{run_id}/approve", json={"plan": plan(("x", ["y"]), ("y", ["x"]))}
        )
        assert bad.status_code == 422 and "cycle" in bad.json()["detail"]
        assert client.get(f"/task/{run_id}/progress").json()["state"] == "Paused"
        ok = client.post(f"/task/{run_id}/approve", json={"plan": plan(("edited", []))})
        assert ok.status_code == 202, ok.text
    final = follow(stack, run_id)[-1]
    assert final["state"] == "Completed"
    assert [s["id"] for s in final["subtasks"]] == ["edited"]
    assert final["forecast"] is None  # only while the plan waits
    assert fake_anthropic.calls_for("Subtask id: edited")
    assert not fake_anthropic.calls_for("Subtask id: first")


def test_rejecting_a_plan_cancels_the_run(stack: Stack, fake_anthropic: FakeAnthropic) -> None:
    run_id = stack.submit(goal="reject me", plan=plan(("never", [])), approve=True)
    follow(stack, run_id, until="Paused")
    with stack.client() as client:
        assert client.post(f"/task/{run_id}/reject").status_code == 202
        assert client.post(f"/task/{run_id}/approve").status_code in (409, 202)
    final = follow(stack, run_id, timeout=60)[-1]
    assert final["state"] == "Cancelled"
    assert not fake_anthropic.calls_for("Subtask id: never")


def test_budget_halts_the_run_and_says_so(stack: Stack, fake_anthropic: FakeAnthropic) -> None:
    # Every fake call uses 120 tokens; after two, 240 >= 200 and nothing more may start.
    chain = plan(("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["c"]))
    run_id = stack.submit(goal="spend carefully", plan=chain, budget={"max_tokens": 200})
    final = follow(stack, run_id)[-1]
    assert final["state"] == "Failed"
    assert final["message"].startswith("budget exceeded: 240 tokens used of 200")
    assert final["budget"]["max_tokens"] == 200
    assert final["budget"]["exceeded"] == "240 tokens used of 200"
    assert final["counts"]["cancelled"] == 2
    assert {s["id"]: s["state"] for s in final["subtasks"]} == {
        "a": "Completed", "b": "Completed", "c": "Halted", "d": "Halted",
    }  # fmt: skip
    assert len(fake_anthropic.calls) == 2  # no call for c, d or the join
    assert "budget exceeded" in final["result"]


def test_list_shows_recent_goal_runs_newest_first(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    first = stack.submit(goal="listed one", plan=plan(("x", [])))
    second = stack.submit(goal="listed two", plan=plan(("x", [])))
    with stack.client() as client:
        page = client.get("/task", params={"limit": 2}).json()
        rest = client.get("/task", params={"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in page["items"]] == [second, first]
    assert page["next_offset"] == 2 and page["items"][0]["goal"] == "listed two"
    assert {i["id"] for i in rest["items"]}.isdisjoint({first, second})
    for run_id in (first, second):
        follow(stack, run_id)


def test_wall_clock_and_subtask_budgets_halt_the_run(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: slow", delay=3.0)
    timed = stack.submit(
        goal="out of time", plan=plan(("slow", []), ("later", ["slow"])), budget={"max_seconds": 1}
    )
    too_big = stack.submit(
        goal="too many steps",
        plan=plan(("a", []), ("b", []), ("c", [])),
        budget={"max_subtasks": 2},
    )
    timed_doc = follow(stack, timed)[-1]
    assert timed_doc["state"] == "Failed"
    assert timed_doc["budget"]["exceeded"] == "the wall-clock budget ran out"
    assert {s["id"]: s["state"] for s in timed_doc["subtasks"]}["later"] == "Halted"
    assert not fake_anthropic.calls_for("Subtask id: later")
    big_doc = follow(stack, too_big)[-1]
    assert big_doc["state"] == "Failed"
    assert big_doc["message"] == (
        "budget exceeded: the plan has 3 subtasks, the budget allows 2; nothing was run"
    )
    assert not fake_anthropic.calls_for("too many steps")


def test_with_approval_a_plan_revision_pauses_as_a_diff_and_runs_once_approved(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: fetch\n", status=400)  # permanent: the replanner is asked
    alternative = {
        "id": "fetch_alt",
        "title": "fetch another way",
        "instruction": "do fetch another way",
        "kind": "extract",
        "tier": "fast",
        "replaces": "fetch",
    }
    fake_anthropic.on("Revise the plan", tool_input={"subtasks": [alternative]})
    run_id = stack.submit(
        goal="revise with approval", plan=plan(("fetch", []), ("report", ["fetch"])), approve=True
    )
    follow(stack, run_id, until="Paused")
    with stack.client() as client:
        assert client.post(f"/task/{run_id}/approve").status_code == 202
    waiting = follow(
        stack, run_id, until=lambda d: d["state"] == "Paused" and bool(d.get("replans"))
    )[-1]
    [replan] = waiting["replans"]
    assert replan["waiting"] is True and replan["revision"] == 1
    assert replan["replaced"] == {"fetch": "fetch_alt"}
    rows = {s["id"]: s for s in waiting["subtasks"]}
    assert rows["fetch_alt"]["revision"] == 1 and rows["fetch"]["replaced_by"] == "fetch_alt"
    assert rows["report"]["depends_on"] == ["fetch_alt"]
    assert waiting["plan_revision"] == 0  # nothing of the revision runs before approval
    assert not fake_anthropic.calls_for("Subtask id: fetch_alt")
    with stack.client() as client:
        shown = client.get(f"/task/{run_id}/plan").json()
        assert [s["id"] for s in shown["subtasks"]] == ["fetch", "report", "fetch_alt"]
        assert client.post(f"/task/{run_id}/approve").status_code == 202
    final = follow(stack, run_id)[-1]
    assert final["state"] == "Completed", final["message"]
    assert final["plan_revision"] == 1 and final["replans"][0]["waiting"] is False
    states = {s["id"]: s["state"] for s in final["subtasks"]}
    assert states == {"fetch": "Failed", "report": "Completed", "fetch_alt": "Completed"}


def test_a_subtasks_text_streams_as_deltas_before_it_completes_and_a_late_watcher_catches_up(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    words = " ".join(f"word{i}" for i in range(120))
    written = {"output": f"# Findings\n\n{words}\n", "learned": "streamed a long answer"}
    fake_anthropic.on("Subtask id: talk", delay=2.0, tool_input=written)
    run_id = stack.submit(goal="stream it", plan=plan(("talk", [])))
    late: list[list[tuple[str, dict]]] = []
    joined = threading.Event()

    def join_late() -> None:
        late.append(stream_events(stack, run_id))

    def on_event(kind: str, data: dict) -> None:
        # After the second delta, a second watcher connects in the middle of the writing.
        deltas = [e for e in events_so_far if e[0] == "delta"]
        if kind == "delta" and len(deltas) == 1 and not joined.is_set():
            joined.set()
            threading.Thread(target=join_late, daemon=True).start()
        events_so_far.append((kind, data))

    events_so_far: list[tuple[str, dict]] = []
    events = stream_events(stack, run_id, on_event=on_event)

    def completed(data: dict) -> bool:
        return any(s["id"] == "talk" and s["state"] == "Completed" for s in data["subtasks"])

    done_at = next(
        i for i, (kind, data) in enumerate(events) if kind == "progress" and completed(data)
    )
    before = [
        data for kind, data in events[:done_at] if kind == "delta" and data["subtask"] == "talk"
    ]
    assert len(before) >= 3, events
    assert before[0].get("restart") is True  # the first text of an attempt starts it
    with stack.client() as client:
        output = client.get(f"/task/{run_id}/subtasks/talk").json()["output"]
    assert output == written["output"]
    assert streamed_text(events, "talk") == output

    deadline = time.monotonic() + 30
    while not late and time.monotonic() < deadline:
        time.sleep(0.1)
    assert late, "the late watcher's stream did not end"
    late_deltas = [data for kind, data in late[0] if kind == "delta"]
    first = late_deltas[0]
    # Its first delta is the text so far, marked to replace whatever it showed.
    assert first["subtask"] == "talk" and first["restart"] is True
    assert first["text"] and output.startswith(first["text"]) and first["text"] != output
    assert streamed_text(late[0], "talk") == output


def test_another_stack_on_the_same_home_does_not_take_this_ones_streamed_output(
    stack: Stack, prefect_server: str, fake_anthropic: FakeAnthropic
) -> None:
    # A second `mission up` (API only) on the session's MISSION_HOME starts, then stops: each
    # listens on a socket of its own, so this stack's goal runs still reach its API.
    other = start_stack(prefect_server, MISSION_API_ONLY="true", **STACK_ENV)
    stop_stack(other)
    written = {"output": " ".join(f"word{i}" for i in range(80)), "learned": "still streamed"}
    fake_anthropic.on("Subtask id: again\n", delay=1.5, tool_input=written)
    run_id = stack.submit(goal="stream after a neighbour left", plan=plan(("again", [])))
    events = stream_events(stack, run_id)
    assert sum(kind == "delta" for kind, _ in events) >= 3
    assert streamed_text(events, "again") == written["output"]
