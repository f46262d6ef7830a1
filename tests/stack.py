"""Start and stop `mission up` as a child process (for the API tests and the service bench)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """`mission up` against an existing Prefect server, with a password and two tokens."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes to it until it stops
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up"],
        env={
            **os.environ,
            "MISSION_PREFECT_API_URL": prefect_api_url,
            "MISSION_PORT": str(port),
            "MISSION_PASSWORD": PASSWORD,
            "MISSION_API_TOKENS": f"{TOKEN},second-token-abcdef",
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
    """Ctrl-C, as a person would; returns the exit code."""
    stack.process.send_signal(signal.SIGINT)
    return stack.process.wait(timeout=60)
