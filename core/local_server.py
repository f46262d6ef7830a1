"""Find or start the Prefect server a command talks to (never Prefect's ephemeral mode).

The server we start has a front door: it asks every request for credentials (Prefect's basic
auth, `PREFECT_SERVER_API_AUTH_STRING`), answers only requests addressed to its loopback
names (no DNS rebinding) and no cross-origin request from another site (CORS). The
credentials are `PREFECT_API_AUTH_STRING` when it is set, else a random secret made once per
`MISSION_HOME` in `MISSION_HOME/prefect-auth` (readable by its owner only); `connect()` hands
them to the process, which passes them on to what it starts (the runner, goal runs).

`python -m core.local_server server start ...` is `prefect server start ...` behind the Host
check (how a server on PostgreSQL is started; on SQLite, core.prefect_sqlite adds it too).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.errors import ConfigurationError

START_TIMEOUT_S = 90.0
AUTH_FILE = "prefect-auth"
AUTH_USER = "mission"
# The names a request to the local server may be addressed to; anything else (a site's own
# name resolving to 127.0.0.1) is refused with 400.
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def server_auth(home: Path) -> str:
    """The credentials (`user:password`) of the Prefect servers kept under `home`: read from
    `home/prefect-auth`, or made there at first use (random, mode 0600)."""
    path = home / AUTH_FILE
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    made = home / f".{AUTH_FILE}.{os.getpid()}"
    fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{AUTH_USER}:{secrets.token_urlsafe(32)}\n")
    try:
        os.link(made, path)  # atomic: two commands starting at once agree on one secret
    except FileExistsError:
        pass
    finally:
        made.unlink()
    return path.read_text().strip()


def auth_hint(home: Path) -> str:
    """Where the person who started the stack finds the password the Prefect UI asks for."""
    path = home / AUTH_FILE
    current = os.environ.get("PREFECT_API_AUTH_STRING")
    if current and path.exists() and server_auth(home) == current:
        return f"the Prefect UI asks for a password: paste the line in {path}"
    return "the Prefect UI asks for a password: the value of PREFECT_API_AUTH_STRING"


def prefect_auth(home: Path) -> str:
    """What this process authenticates with: `PREFECT_API_AUTH_STRING` when set, else the
    secret of `home`."""
    return os.environ.get("PREFECT_API_AUTH_STRING") or server_auth(home)


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def server_env(home: Path, port: int, auth: str, database_url: str | None = None) -> dict[str, str]:
    """Environment for a Prefect server process that keeps its data under `home`, listens on
    `port` and asks every request for `auth`."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    origins = ",".join(f"http://{host}:{port}" for host in LOCAL_HOSTS)
    env.update(
        PREFECT_SERVER_API_AUTH_STRING=auth,
        # Its own UI is the only site that may call it from a browser, at this port.
        PREFECT_SERVER_CORS_ALLOWED_ORIGINS=origins,
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",
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
    """A Prefect server process we started, stopped again by `stop()`. It asks for `auth`
    (default: `prefect_auth(home)`)."""

    home: Path
    port: int
    database_url: str | None = None
    auth: str = field(default="", repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.auth = self.auth or prefect_auth(self.home)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def client_env(self) -> dict[str, str]:
        """What a process needs to talk to this server."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_API_AUTH_STRING": self.auth}

    def start(self) -> PrefectServer:
        (self.home / "prefect").mkdir(parents=True, exist_ok=True)
        log = open(self.home / "prefect-server.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                # Prefect's server behind the Host check; on SQLite, with write transactions
                # that take turns.
                "core.local_server" if self.database_url else "core.prefect_sqlite",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=server_env(self.home, self.port, self.auth, self.database_url),
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

    Sets PREFECT_API_URL / PREFECT_API_AUTH_STRING / PREFECT_UI_URL / PREFECT_HOME before
    Prefect is imported. The credentials are PREFECT_API_AUTH_STRING when it is set; else the
    secret of `home` for the local server, and for a configured one too when `home` has one.
    """
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the live view is the output
    api_url = api_url or os.environ.get("PREFECT_API_URL")
    started: PrefectServer | None = None
    if api_url:
        if not healthy(api_url):
            raise ConfigurationError(f"the Prefect server at {api_url} is not answering")
        if "PREFECT_API_AUTH_STRING" not in os.environ and (home / AUTH_FILE).exists():
            os.environ["PREFECT_API_AUTH_STRING"] = server_auth(home)
    else:
        server = PrefectServer(home=home, port=port, database_url=database_url)
        os.environ["PREFECT_API_AUTH_STRING"] = server.auth
        api_url = server.api_url
        if not healthy(api_url):
            started = server.start()
    os.environ["PREFECT_API_URL"] = api_url
    os.environ.setdefault("PREFECT_UI_URL", api_url.removesuffix("/api"))
    return started


def main() -> None:
    """`prefect server start ...` answering only requests addressed to LOCAL_HOSTS."""
    from core.prefect_compat.server import refuse_foreign_hosts

    refuse_foreign_hosts(LOCAL_HOSTS)
    from prefect.cli import app

    app()


if __name__ == "__main__":
    main()
