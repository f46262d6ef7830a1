"""The one-machine scale-out topology (scripts/scaleout) on the real PostgreSQL and Redis:
a Prefect server on PostgreSQL with Redis messaging, two process workers, one API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from core.plan import PlanLimits
from services import schedules
from tests.api.conftest import (
    follow,
    plan,
    plan_with_a_stuck_subtask,
    stream_events,
    streamed_text,
    wait_until_called,
)
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import (
    Stack,
    goal_run_processes,
    prefect_basic_auth,
    reachable,
    start_scaleout,
    stop_scaleout,
)

POOL_DEPLOYMENT = "compound-goal/compound-goal-pool"
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, Path]]:
    if not (reachable(5432) and reachable(6379)):  # a skipped test proves nothing
        pytest.fail(
            "the scale-out tests need PostgreSQL on 5432 and Redis on 6379 (.ci/run starts them)"
        )
    running = start_scaleout(
        tmp_path_factory.mktemp("scaleout"),
        # A goal run that stops sending heartbeats (every 30 s, Prefect's minimum) is marked
        # Crashed 35 s after its last one.
        MISSION_HEARTBEAT_S="30",
        MISSION_ZOMBIE_AFTER_S="35",
        # One slot for the structured tier: a retry can only run such a subtask once the
        # killed worker's slot is back.
        MISSION_TIER_LIMITS="structured=1",
        # At most 3 goal runs per worker: a burst of 6 cannot all go to whichever polls first.
        MISSION_SCALEOUT_WORKER_LIMIT="3",
    )
    yield running.stack, running.prefect_api, running.home
    assert stop_scaleout(running) == 0
    server = f"prefect server start --host 127.0.0.1 --port {running.prefect_port}"
    leftovers = subprocess.run(["pgrep", "-f", server], capture_output=True, text=True)
    assert leftovers.returncode == 1, leftovers  # no such process: the Prefect server is gone
    assert not reachable(running.api_port)  # and the API


def test_two_workers_share_a_burst_and_run_each_goal_once(
    scaleout: tuple[Stack, str, Path], fake_anthropic: FakeAnthropic
) -> None:
    stack, prefect_api, _ = scaleout
    for i in range(6):
        fake_anthropic.on(f"Subtask id: burst{i}", delay=1.0)
    runs = [
        stack.submit(
            goal=f"burst goal {i}", plan=plan((f"burst{i}", []), (f"after{i}", [f"burst{i}"]))
        )
        for i in range(6)
    ]
    for run_id in runs:
        assert follow(stack, run_id, timeout=120)[-1]["state"] == "Completed"

    events = httpx.post(
        f"{prefect_api}/events/filter",
        json={"filter": {"event": {"name": ["prefect.worker.submitted-flow-run"]}}, "limit": 50},
        auth=prefect_basic_auth(),
    ).json()["events"]
    ran_by: dict[str, list[str]] = {}
    for event in events:
        worker = event["resource"]["prefect.resource.id"].rsplit(".", 1)[-1]
        for related in event["related"]:
            if related["prefect.resource.id"].startswith("prefect.flow-run."):
                ran_by.setdefault(related["prefect.resource.id"].split(".")[-1], []).append(worker)
    assert sorted(ran_by) == sorted(runs)
    assert all(len(workers) == 1 for workers in ran_by.values())  # each run executed once
    assert set(Counter(w[0] for w in ran_by.values())) == {"worker-1", "worker-2"}
    for i in range(6):  # and each subtask called its model once
        assert len(fake_anthropic.calls_for(f"Subtask id: burst{i}\n")) == 1


def _state_of(doc: dict[str, Any], subtask: str) -> str:
    return str(next(s["state"] for s in doc["subtasks"] if s["id"] == subtask))


def test_a_killed_workers_run_ends_crashed_and_a_retry_reuses_its_finished_subtasks(
    scaleout: tuple[Stack, str, Path], fake_anthropic: FakeAnthropic
) -> None:
    stack, _, _ = scaleout
    fake_anthropic.on("Subtask id: hangs\n", times=1, delay=120)  # in flight when killed
    ready = plan_with_a_stuck_subtask("hangs")
    run_id = stack.submit(goal="survive a dead worker", plan=ready)
    wait_until_called(fake_anthropic, "Subtask id: hangs\n", within_s=90)
    # Prefect records task-run states from their events, a moment after they happen: the
    # document may show `first` Running for a while after `hangs`, its dependent, started.
    before = follow(
        stack, run_id, timeout=30, until=lambda doc: _state_of(doc, "first") != "Running"
    )
    assert _state_of(before[-1], "first") == "Completed"

    goal_process, worker = goal_run_processes(run_id)
    command = Path(f"/proc/{worker}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    assert "worker start --pool mission-process --name worker-" in command
    killed_at = time.monotonic()
    os.kill(worker, signal.SIGKILL)  # the worker and its goal run die at once, like a machine
    os.kill(goal_process, signal.SIGKILL)
    crashed = follow(stack, run_id, timeout=120)[-1]
    crashed_after = time.monotonic() - killed_at
    assert crashed["state"] == "Crashed", crashed
    assert "no heartbeat" in crashed["message"]
    # Bound: the heartbeat interval (30 s) plus the silence allowed (35 s), plus slack.
    assert crashed_after < 30 + 35 + 15, crashed_after

    # scripts/scaleout started the worker again, as a supervisor would.
    again = subprocess.run(["pgrep", "-f", f"^{command}"], capture_output=True, text=True).stdout
    assert again.split() and str(worker) not in again.split()

    with stack.client() as client:
        retried = client.post(f"/task/{run_id}/retry")
    assert retried.status_code == 202, retried.text
    final = follow(stack, run_id, timeout=120)[-1]
    assert final["state"] == "Completed", final
    states = {s["id"]: s["state"] for s in final["subtasks"]}
    assert states == {"first": "Cached", "side": "Cached", "hangs": "Completed"}, states
    calls = {i: len(fake_anthropic.calls_for(f"Subtask id: {i}\n")) for i in ("first", "side")}
    assert calls == {"first": 1, "side": 1}  # finished work was not repeated
    assert len(fake_anthropic.calls_for("Subtask id: hangs\n")) == 2  # killed, then retried
    assert final["result"] and final["id"] == run_id


def test_a_schedule_with_parameters_produces_runs_with_them_on_postgres(
    scaleout: tuple[Stack, str, Path], fake_anthropic: FakeAnthropic
) -> None:
    stack, prefect_api, _ = scaleout
    with stack.client() as client:
        listed = {item["goal"]: item for item in client.get("/schedules").json()["items"]}
    # prefect.yaml's example schedules, deployed with their own parameters, paused.
    weekly = listed["Summarise what changed on our competitors' pricing pages last week"]
    assert (weekly["cron"], weekly["timezone"], weekly["active"]) == (
        "0 8 * * 1", "Europe/Paris", False,
    )  # fmt: skip
    assert weekly["budget"] == {"max_cost_usd": 2.0, "max_seconds": 1800}

    goal = f"scheduled on postgres {uuid.uuid4().hex[:8]}"
    spec = schedules.build_spec(
        goal,
        interval_s=3600,
        plan=plan(("tick", [])),
        budget={"max_tokens": 50_000},
        max_goal_chars=10_000,
        limits=PlanLimits(tiers=frozenset({"fast"})),
        anchor=datetime.now(UTC) + timedelta(seconds=12),  # see test_schedules.py
    )

    async def create() -> str:
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            async with get_client() as client:
                created = await schedules.create_schedule(client, POOL_DEPLOYMENT, spec, 50)
        return str(created.id)

    schedule_id = asyncio.run(create())
    try:
        deadline = time.monotonic() + 60
        while True:
            with stack.client() as client:
                items = client.get("/task?limit=50").json()["items"]
            runs = [item for item in items if item["goal"] == goal]
            if runs:
                break
            assert time.monotonic() < deadline, "the schedule produced no goal run"
            time.sleep(0.5)
        final = follow(stack, runs[0]["id"], timeout=90)[-1]
        assert final["state"] == "Completed", final
        assert final["budget"]["max_tokens"] == 50_000  # the schedule's parameters
        assert [s["id"] for s in final["subtasks"]] == ["tick"]
        assert len(fake_anthropic.calls_for("Subtask id: tick\n")) == 1
    finally:
        with stack.client() as client:
            client.delete(f"/schedules/{schedule_id}")


def test_a_workers_subtask_streams_its_text_to_the_api_through_redis(
    scaleout: tuple[Stack, str, Path], fake_anthropic: FakeAnthropic
) -> None:
    stack, _, _ = scaleout
    words = " ".join(f"word{i}" for i in range(100))
    written = {"output": f"Streamed from a worker: {words}", "learned": "it streamed"}
    fake_anthropic.on("Subtask id: voice\n", delay=2.0, tool_input=written)
    run_id = stack.submit(goal="stream from a worker", plan=plan(("voice", [])))
    events = stream_events(stack, run_id, timeout=120)
    done_at = next(
        i
        for i, (kind, data) in enumerate(events)
        if kind == "progress"
        and any(s["id"] == "voice" and s["state"] == "Completed" for s in data["subtasks"])
    )
    before = [d for kind, d in events[:done_at] if kind == "delta" and d["subtask"] == "voice"]
    assert len(before) >= 3, events
    assert streamed_text(events, "voice") == written["output"]
