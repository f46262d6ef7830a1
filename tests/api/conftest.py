"""The real stack for API tests: `mission up` (runner + API) against the session's Prefect
server, driven over HTTP; models are the fake Anthropic server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import _free_port

PASSWORD = "correct horse battery staple"
TOKEN = "test-token-0123456789"


@dataclass
class Stack:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def submit(self, **body: Any) -> str:
        with self.client() as client:
            response = client.post("/task/compound", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


def start_stack(prefect_api_url: str, **env: str) -> Stack:
    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes to it until it stops
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up"],
        env={
            **os.environ,
            "MISSION_PREFECT_API_URL": prefect_api_url,
            "MISSION_PORT": str(port),
            "MISSION_PASSWORD": PASSWORD,
            "MISSION_API_TOKENS": f"{TOKEN},second-token-abcdef",
            "MISSION_EVENTS_HEARTBEAT_S": "1",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"mission up exited: {log.read().decode()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Stack(url, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("mission up did not answer within 90 s")


def stop_stack(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGINT)
    return stack.process.wait(timeout=60)


@pytest.fixture(scope="session")
def stack(prefect_server: str) -> Iterator[Stack]:
    running = start_stack(prefect_server, MISSION_TIER_LIMITS="structured=1")
    yield running
    stop_stack(running)


def follow(stack: Stack, run_id: str, until: str | None = None, timeout: float = 90) -> list[dict]:
    """Progress documents from the run's SSE stream, until `until` (a goal state) or the end."""
    docs: list[dict[str, Any]] = []
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=timeout) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                field, _, value = line.partition(":")
                event[field] = value.removeprefix(" ")
                continue
            if event.get("event") == "progress":
                docs.append(json.loads(event["data"]))
                if until is not None and docs[-1]["state"] == until:
                    return docs
            elif event.get("event") == "end":
                return docs
            event = {}
    return docs


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
