"""The one-machine scale-out topology (scripts/scaleout) on the real PostgreSQL and Redis:
a Prefect server on PostgreSQL with Redis messaging, two process workers, one API."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import follow, plan
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import PASSWORD, TOKEN, Stack, free_port

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
pytestmark = pytest.mark.postgres


def _reachable(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, Path]]:
    if not (_reachable(5432) and _reachable(6379)):
        if os.environ.get("CI"):
            pytest.fail("the scale-out tests need PostgreSQL on 5432 and Redis on 6379")
        pytest.skip("needs PostgreSQL on 5432 and Redis on 6379")
    home = tmp_path_factory.mktemp("scaleout")
    prefect_port, api_port = free_port(), free_port()
    database = f"mission_test_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "MISSION_HOME": str(home),
        "MISSION_SCALEOUT_DB": f"{POSTGRES}/{database}",
        "MISSION_PREFECT_PORT": str(prefect_port),
        "MISSION_PORT": str(api_port),
        "MISSION_PASSWORD": PASSWORD,
        "MISSION_API_TOKENS": TOKEN,
    }
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "PREFECT_HOME", "MISSION_PREFECT_API_URL"):
        env.pop(name, None)
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "scaleout")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, f"scripts/scaleout exited; logs in {home / 'logs'}"
        assert time.monotonic() < deadline, "the scale-out API did not answer in 120 s"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    yield Stack(url, process), f"http://127.0.0.1:{prefect_port}/api", home
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    server = f"prefect server start --host 127.0.0.1 --port {prefect_port}"
    leftovers = subprocess.run(["pgrep", "-f", server], capture_output=True, text=True)
    assert leftovers.returncode == 1, leftovers  # no such process: the Prefect server is gone
    assert not _reachable(api_port)  # and the API


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
