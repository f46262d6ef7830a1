"""Find or start the Prefect server a command talks to (never Prefect's ephemeral mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.errors import ConfigurationError

START_TIMEOUT_S = 90.0


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def server_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    """Environment for a Prefect server process that keeps its data under `home`."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        # A goal run waiting for a runner slot is not late. Prefect's late-runs service marks
        # every run waiting over 15 s, and on SQLite those writes collide with the runner
        # claiming runs: 30 goal runs at once gave 192 "database is locked" errors with it,
        # 8 without (docs/reliability.md).
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
    )
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


@dataclass
class PrefectServer:
    """A Prefect server process we started, stopped again by `stop()`."""

    home: Path
    port: int
    database_url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> PrefectServer:
        (self.home / "prefect").mkdir(parents=True, exist_ok=True)
        log = open(self.home / "prefect-server.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                # On SQLite, Prefect's server with write transactions that take turns.
                "prefect" if self.database_url else "core.prefect_sqlite",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=server_env(self.home, self.database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigurationError(
                    f"the Prefect server exited at start (code {self.process.returncode}); "
                    f"see {self.home / 'prefect-server.log'}"
                )
            if healthy(self.api_url, timeout=0.5):
                return self
            time.sleep(0.2)
        self.stop()
        raise ConfigurationError(f"the Prefect server did not start within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM to a child started with start_new_session and all its descendants; SIGKILL
    if they are still there after `grace_s`."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def connect(
    home: Path, port: int, api_url: str | None, database_url: str | None = None
) -> PrefectServer | None:
    """Point this process at a Prefect server: the configured one, one already running on
    `port`, or a new one under `home` (on SQLite, or on `database_url`), returned so the
    caller can stop it.

    Sets PREFECT_API_URL / PREFECT_UI_URL / PREFECT_HOME before Prefect is imported.
    """
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the live view is the output
    api_url = api_url or os.environ.get("PREFECT_API_URL")
    started: PrefectServer | None = None
    if api_url:
        if not healthy(api_url):
            raise ConfigurationError(f"the Prefect server at {api_url} is not answering")
    else:
        server = PrefectServer(home=home, port=port, database_url=database_url)
        api_url = server.api_url
        if not healthy(api_url):
            started = server.start()
    os.environ["PREFECT_API_URL"] = api_url
    os.environ.setdefault("PREFECT_UI_URL", api_url.removesuffix("/api"))
    return started
