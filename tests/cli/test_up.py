"""`mission up`: refuses to start unprotected, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.local_server import PrefectServer
from tests.api.conftest import STACK_ENV, plan, wait_until_called
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import goal_run_processes, prefect_basic_auth, start_stack, stop_stack


def test_up_refuses_to_start_without_a_password() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MISSION_PASSWORD", "MISSION_LOCAL_DEMO")
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MISSION_PASSWORD" in done.stderr and "Traceback" not in done.stderr


def test_up_refuses_a_local_demo_on_a_public_address() -> None:
    env = {**os.environ, "MISSION_HOST": "0.0.0.0"}
    env.pop("MISSION_PASSWORD", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "up", "--local-demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "loopback" in done.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_runner_and_the_api(prefect_server: str, tmp_path: Path) -> None:
    stack = start_stack(prefect_server, MISSION_HOME=str(tmp_path), **STACK_ENV)
    children = subprocess.run(
        ["pgrep", "-P", str(stack.process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert children  # the runner
    assert stop_stack(stack) == 0
    for pid in children:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/health", timeout=2)


def _state(prefect_server: str, run_id: str) -> tuple[str, str]:
    with httpx.Client(auth=prefect_basic_auth()) as client:
        run = client.get(f"{prefect_server}/flow_runs/{run_id}").json()
    return run["state"]["name"], run["state"]["message"]


@pytest.mark.slow
def test_goal_runs_left_by_a_stack_that_died_are_marked_crashed_at_the_next_start(
    own_prefect: PrefectServer, tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    prefect_server = own_prefect.api_url
    first = start_stack(prefect_server, MISSION_HOME=str(tmp_path), **STACK_ENV)
    fake_anthropic.on("Subtask id: long\n", times=1, delay=120)
    run_id = first.submit(goal="the machine goes away", plan=plan(("long", [])))
    wait_until_called(fake_anthropic, "Subtask id: long\n", within_s=60)
    _, runner = goal_run_processes(run_id)
    # Everything at once, as when the machine goes away: nobody is left to say so.
    first.process.kill()
    os.killpg(runner, signal.SIGKILL)
    first.process.wait()
    time.sleep(1)
    assert _state(prefect_server, run_id)[0] == "Running"  # and it would stay so

    second = start_stack(prefect_server, MISSION_HOME=str(tmp_path), **STACK_ENV)
    try:
        assert _state(prefect_server, run_id) == (
            "Crashed", "the stack stopped while this goal ran; retry it to go on",
        )  # fmt: skip
    finally:
        assert stop_stack(second) == 0
    assert not (tmp_path / "runner.pid").exists()  # a clean stop leaves no claim behind


@pytest.mark.slow
def test_up_refuses_to_start_while_an_earlier_runner_still_serves_its_home(
    prefect_server: str, tmp_path: Path
) -> None:
    first = start_stack(prefect_server, MISSION_HOME=str(tmp_path), **STACK_ENV)
    runner = int((tmp_path / "runner.pid").read_text())
    first.process.kill()  # `mission up` dies; its runner lives on, still serving goals
    first.process.wait()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "up"],
            env={**os.environ, "MISSION_HOME": str(tmp_path),
                 "MISSION_PREFECT_API_URL": prefect_server, "MISSION_PASSWORD": "a-password"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2
        assert f"an earlier `mission up` (pid {runner}) still serves" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        os.killpg(runner, signal.SIGKILL)
