"""`mission up`: refuses to start unprotected, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import STACK_ENV
from tests.stack import start_stack, stop_stack


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


@pytest.mark.prefect
def test_ctrl_c_stops_the_runner_and_the_api(prefect_server: str) -> None:
    stack = start_stack(prefect_server, **STACK_ENV)
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
