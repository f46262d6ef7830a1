"""The real stack for API tests: `mission up` (runner + API) against the session's Prefect
server, driven over HTTP; models are the fake Anthropic server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Running

from flows.compound_goal import compound_goal
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import TOKEN, Stack, sse_events, start_stack, stop_stack

__all__ = [
    "STACK_ENV",
    "TOKEN",
    "Stack",
    "follow",
    "plan",
    "plan_with_a_stuck_subtask",
    "stream_events",
    "streamed_text",
    "wait_until_called",
]
# Every `mission up` of the API tests: one slot for the structured tier (cancel and retry
# tests need a tier that a stuck subtask fills), heartbeats of the event streams every second.
STACK_ENV = {"MISSION_TIER_LIMITS": "structured=1", "MISSION_EVENTS_HEARTBEAT_S": "1"}


@pytest.fixture(scope="session")
def stack(prefect_server: str) -> Iterator[Stack]:
    running = start_stack(prefect_server, **STACK_ENV)
    yield running
    stop_stack(running)


@pytest.fixture
def one_active_run(prefect_server: str) -> Iterator[None]:
    """An app limited to one active goal run, and a goal run that counts as active."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(compound_goal, parameters={"goal": "holds the only slot"})
        client.set_flow_run_state(run.id, Running(), force=True)
        yield
        client.set_flow_run_state(run.id, Cancelled(), force=True)


def follow(
    stack: Stack,
    run_id: str,
    until: str | Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 90,
) -> list[dict]:
    """Progress documents from the run's SSE stream, until `until` (a goal state, or a test
    of the document) holds or the stream ends."""
    reached = (lambda doc: doc["state"] == until) if isinstance(until, str) else until
    docs: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout  # heartbeats keep the stream itself alive
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=timeout) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(response):
            last = docs[-1]["state"] if docs else "no document"
            assert time.monotonic() < deadline, f"not reached within {timeout} s ({last})"
            if event.get("event") == "progress":
                docs.append(json.loads(event["data"]))
                if reached is not None and reached(docs[-1]):
                    return docs
            elif event.get("event") == "end":
                return docs
            elif event.get("event") == "error":
                raise AssertionError(f"the stream ended in an error ({last}): {event['data']}")
    return docs


def stream_events(
    stack: Stack,
    run_id: str,
    timeout: float = 90,
    on_event: Callable[[str, dict], None] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Every `progress` and `delta` message of the run's SSE stream, in order, as
    (event, data), until its `end`; `on_event` is called with each as it arrives."""
    events: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=timeout) as response,
    ):
        assert response.status_code == 200, response.read()
        for event in sse_events(response):
            assert time.monotonic() < deadline, f"no end within {timeout} s"
            kind = event.get("event", "")
            if kind in ("progress", "delta"):
                events.append((kind, json.loads(event["data"])))
                if on_event is not None:
                    on_event(kind, events[-1][1])
            elif kind == "end":
                return events
    return events


def streamed_text(events: list[tuple[str, dict[str, Any]]], subtask: str) -> str:
    """A subtask's text as a page shows it from the `delta` messages: appended, or started
    again at a `restart`."""
    text = ""
    for kind, data in events:
        if kind == "delta" and data["subtask"] == subtask:
            text = data["text"] if data.get("restart") else text + data["text"]
    return text


def wait_until_called(fake: FakeAnthropic, match: str, within_s: float = 60) -> None:
    """Until a request whose prompt contains `match` has reached the fake model."""
    deadline = time.monotonic() + within_s
    while not fake.calls_for(match):
        assert time.monotonic() < deadline, f"no request with {match!r} reached the model"
        time.sleep(0.1)


def plan(*subtasks: tuple[str, list[str]], tier: str = "fast") -> dict[str, Any]:
    """A ready plan: (id, depends_on) pairs."""
    return {
        "subtasks": [
            {
                "id": sid,
                "title": f"step {sid}",
                "instruction": f"do {sid}",
                "kind": "extract",
                "tier": tier,
                "depends_on": deps,
            }
            for sid, deps in subtasks
        ]
    }


def plan_with_a_stuck_subtask(stuck: str) -> dict[str, Any]:
    """`first` and `side` (fast), and `stuck` after `first` on the structured tier (one slot
    in the test stacks): a goal run to kill while `stuck` is at the model."""
    ready = plan(("first", []), ("side", []))
    ready["subtasks"].append(
        {"id": stuck, "title": f"step {stuck}", "instruction": f"do {stuck}",
         "kind": "structure", "tier": "structured", "depends_on": ["first"]}
    )  # fmt: skip
    return ready
