"""Process faults on the default stack, injected for real: a killed runner, a Prefect server
that goes away and comes back. Nothing is lost and finished work is not redone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from core.local_server import PrefectServer
from tests.api.conftest import (
    STACK_ENV,
    Stack,
    follow,
    plan,
    plan_with_a_stuck_subtask,
    wait_until_called,
)
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import goal_run_processes, start_stack, stop_stack

pytestmark = pytest.mark.slow


def _runner_of(stack: Stack) -> int:
    """The pid of the runner `mission up` is running now."""
    found = subprocess.run(
        ["pgrep", "-P", str(stack.process.pid), "-f", "flows.serve"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


def test_a_killed_runner_is_replaced_and_its_crashed_goal_run_is_retried_without_redoing_work(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: stuck\n", times=1, delay=120)  # in flight when killed
    ready = plan_with_a_stuck_subtask("stuck")
    run_id = stack.submit(goal="outlive the runner", plan=ready)
    wait_until_called(fake_anthropic, "Subtask id: stuck\n", within_s=60)

    goal_process, runner = goal_run_processes(run_id)
    assert runner == _runner_of(stack)
    killed_at = time.monotonic()
    os.kill(runner, signal.SIGKILL)  # the runner only: `mission up` sees it die
    crashed = follow(stack, run_id, timeout=60)[-1]
    crashed_after = time.monotonic() - killed_at
    assert crashed["state"] == "Crashed", crashed
    assert crashed["message"] == "the runner stopped (exit code -9) while this goal ran"
    assert crashed_after < 10, crashed_after  # measured: about 1 s
    status = Path(f"/proc/{goal_process}/status")  # its goal run went with it
    assert not status.exists() or "zombie" in status.read_text()

    new_runner = _runner_of(stack)  # `mission up` started another one
    assert new_runner != runner
    with stack.client() as client:
        assert client.post(f"/task/{run_id}/retry").status_code == 202
    final = follow(stack, run_id, timeout=90)[-1]
    assert final["state"] == "Completed", final["message"]
    states = {s["id"]: s["state"] for s in final["subtasks"]}
    assert states == {"first": "Cached", "side": "Cached", "stuck": "Completed"}
    calls = {i: len(fake_anthropic.calls_for(f"Subtask id: {i}\n")) for i in ("first", "side")}
    assert calls == {"first": 1, "side": 1}
    # The killed process held the structured tier's only slot; the retry got it back.
    assert len(fake_anthropic.calls_for("Subtask id: stuck\n")) == 2


def test_a_killed_goal_run_process_ends_crashed_at_once_and_its_runner_lives_on(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on("Subtask id: victim\n", times=1, delay=120)
    run_id = stack.submit(goal="lose the process", plan=plan(("victim", [])))
    wait_until_called(fake_anthropic, "Subtask id: victim\n", within_s=60)
    goal_process, runner = goal_run_processes(run_id)
    killed_at = time.monotonic()
    os.kill(goal_process, signal.SIGKILL)
    crashed = follow(stack, run_id, timeout=60)[-1]
    assert crashed["state"] == "Crashed", crashed
    assert time.monotonic() - killed_at < 10  # the runner saw its child die
    assert _runner_of(stack) == runner  # the runner itself carries on
    with stack.client() as client:
        assert client.post(f"/task/{run_id}/retry").status_code == 202
    assert follow(stack, run_id, timeout=60)[-1]["state"] == "Completed"


def test_while_prefect_is_down_the_api_answers_503_at_once_and_recovers_by_itself(
    own_prefect: PrefectServer, fake_anthropic: FakeAnthropic
) -> None:
    api = start_stack(own_prefect.api_url, MISSION_API_ONLY="true", **STACK_ENV)
    try:
        with api.client() as client:
            assert client.get("/task").status_code == 200
            assert client.get("/health").json()["prefect"] == "up"
            own_prefect.stop()
            # The API notices within three checks (2 s apart); requests in flight at that moment
            # wait out Prefect's client retries (and succeed if it is back in time).
            deadline = time.monotonic() + 15
            while client.get("/health").json()["prefect"] != "unreachable":
                assert time.monotonic() < deadline, "the API did not notice Prefect is down"
                time.sleep(0.5)
            unknown = "00000000-0000-0000-0000-000000000000"
            for method, path in [("GET", "/task"), ("GET", f"/task/{unknown}/progress"),
                                 ("POST", "/task/compound"), ("GET", "/schedules")]:  # fmt: skip
                body = {"goal": "while down", "plan": plan(("x", []))} if method == "POST" else None
                asked = time.monotonic()
                down = client.request(method, path, json=body)
                assert down.status_code == 503, (path, down.text)
                assert time.monotonic() - asked < 1  # at once: no retries while it is away
                assert down.json()["detail"] == (
                    f"the Prefect server at {own_prefect.api_url} is unreachable"
                )
                assert down.headers["retry-after"] == "5"
            own_prefect.start()  # the same database: nothing was lost, nothing was created
            deadline = time.monotonic() + 15
            while client.get("/health").json()["prefect"] != "up":
                assert time.monotonic() < deadline, "the API did not notice Prefect is back"
                time.sleep(0.5)
            back = client.get("/task")
            assert back.status_code == 200, back.text
            assert back.json()["items"] == []
    finally:
        stop_stack(api)
    assert fake_anthropic.calls == []
