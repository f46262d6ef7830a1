"""Start and stop `mission up`, or the one-machine scale-out topology (scripts/scaleout), as
child processes: for the API and scale-out tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
TOKEN = "test-token-0123456789"
ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def prefect_basic_auth() -> httpx.BasicAuth:
    """The credentials of the Prefect servers the tests and benchmarks start
    (PREFECT_API_AUTH_STRING), for requests made without Prefect's client."""
    user, _, password = os.environ["PREFECT_API_AUTH_STRING"].partition(":")
    return httpx.BasicAuth(user, password)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = TOKEN, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def submit(self, **body: Any) -> str:
        with self.client() as client:
            response = client.post("/task/compound", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The messages of a Server-Sent Events response, each as {field: value}."""
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if line:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
        elif event:
            yield event
            event = {}


def start_stack(prefect_api_url: str, **env: str) -> Stack:
    """`mission up` against an existing Prefect server, with a password and two tokens (on
    `MISSION_PORT` when `env` names one)."""
    port = int(env.get("MISSION_PORT") or free_port())
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the child writes to it until it stops
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up"],
        env={
            **os.environ,
            "MISSION_PREFECT_API_URL": prefect_api_url,
            # The same server for Prefect's own settings: a stack on a server of its own
            # must not follow events on the session's server named by the test process.
            "PREFECT_API_URL": prefect_api_url,
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


def reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Scaleout:
    """scripts/scaleout running: its API as a Stack, the Prefect API, where its data lives."""

    stack: Stack
    prefect_api: str
    home: Path
    database: str
    api_port: int
    prefect_port: int


def start_scaleout(home: Path, **env: str) -> Scaleout:
    """scripts/scaleout on a fresh PostgreSQL database (Redis on 6379), with a password and
    a token; `env` adds or overrides settings (MISSION_SCALEOUT_WORKERS, ...)."""
    prefect_port, api_port = free_port(), free_port()
    database = f"mission_test_{uuid.uuid4().hex[:8]}"
    child_env = {
        **os.environ,
        "MISSION_HOME": str(home),
        "MISSION_SCALEOUT_DB": f"{POSTGRES}/{database}",
        "MISSION_PREFECT_PORT": str(prefect_port),
        "MISSION_PORT": str(api_port),
        "MISSION_PASSWORD": PASSWORD,
        "MISSION_API_TOKENS": TOKEN,
        **env,
    }
    for name in ("PREFECT_API_URL", "PREFECT_UI_URL", "PREFECT_HOME", "MISSION_PREFECT_API_URL"):
        child_env.pop(name, None)
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "scaleout")],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"scripts/scaleout exited; logs in {home / 'logs'}")
        if time.monotonic() > deadline:
            process.send_signal(signal.SIGTERM)
            raise RuntimeError("the scale-out API did not answer in 120 s")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return Scaleout(
        Stack(url, process),
        f"http://127.0.0.1:{prefect_port}/api",
        home,
        database,
        api_port,
        prefect_port,
    )


def stop_scaleout(scaleout: Scaleout) -> int:
    """SIGTERM to the script (it stops the API, the workers, then the server); then the
    database goes. Returns the script's exit code."""
    import asyncio

    import asyncpg

    process = scaleout.stack.process
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=90)

    async def drop() -> None:
        admin = await asyncpg.connect(POSTGRES.replace("+asyncpg", "") + "/postgres")
        await admin.execute(f'drop database if exists "{scaleout.database}" with (force)')
        await admin.close()

    asyncio.run(drop())
    return code


def goal_run_processes(run_id: str) -> tuple[int, int]:
    """(the goal run's process, the runner or worker process that started it). A goal run
    forked by the warm runner names its run in its command line (`mission goal-run <id>`),
    and its parent is the runner's fork server; one started by a Prefect worker has the id
    in its environment."""
    title = f"mission goal-run {run_id}".encode()
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            forked = (entry / "cmdline").read_bytes().startswith(title)
            if not forked and marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            parent = _parent(int(entry.name))
            if forked:
                parent = _parent(parent)  # the fork server's parent: the runner
        except (OSError, IndexError, ValueError):
            continue
        return int(entry.name), parent
    raise AssertionError(f"no process runs goal run {run_id}")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
