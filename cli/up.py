"""`mission up`: the whole stack in one command (Prefect server, runner, API + page)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console

from core.errors import ConfigurationError
from core.local_server import connect, stop_process_group
from core.settings import Settings

DEPLOYMENT_WAIT_S = 60.0


class Runner:
    """The `python -m flows.serve` process (each goal run is a child process of it), started
    again by a watcher thread if it dies: a goal run it was running ends Crashed once its
    heartbeats stop, and can be retried on the new runner."""

    RESTARTS_PER_MINUTE = 5

    def __init__(
        self, settings: Settings, env: dict[str, str], on_restart: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.env = env
        self.on_restart = on_restart
        self.process = self._spawn()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="runner-watch", daemon=True)
        self._watcher.start()

    @classmethod
    def start(
        cls, settings: Settings, env: dict[str, str], on_restart: Callable[[str], None]
    ) -> Runner:
        return cls(settings, env, on_restart)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        env.update(
            # How often the runner asks for new goal runs: the floor of submit -> start.
            PREFECT_RUNNER_POLL_FREQUENCY=str(self.settings.runner_poll_s),
            # Goal runs send heartbeats so a dead runner's runs end Crashed (see flows.serve).
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(self.settings.heartbeat_s),
        )
        log = open(self.settings.home / "runner.log", "ab")  # noqa: SIM115 - for the child
        return subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _watch(self) -> None:
        restarts: list[float] = []
        while True:
            code = self.process.wait()
            if self._stopping.wait(1.0):
                return
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > self.RESTARTS_PER_MINUTE:
                self.on_restart(
                    f"the runner keeps exiting (last code {code}); not starting it again: "
                    f"see {self.settings.home / 'runner.log'}"
                )
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.process = self._spawn()
            self.on_restart(f"the runner exited (code {code}); started it again")

    def wait_until_serving(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        from flows.serve import DEPLOYMENT_PATH

        deadline = time.monotonic() + DEPLOYMENT_WAIT_S
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ConfigurationError(
                        f"the runner exited at start; see {self.settings.home / 'runner.log'}"
                    )
                try:
                    client.read_deployment_by_name(DEPLOYMENT_PATH)
                    return
                except ObjectNotFound:
                    time.sleep(0.2)
        raise ConfigurationError(
            f"the runner did not serve the deployment in {DEPLOYMENT_WAIT_S} s"
        )

    def stop(self) -> None:
        """SIGTERM to the runner and its goal runs (they end Crashed), SIGKILL if they linger;
        the watcher starts no new one."""
        with self._lock:
            self._stopping.set()
        stop_process_group(self.process)


def cmd_up(settings: Settings, console: Console) -> int:
    from api.auth import Gate

    Gate.from_settings(settings)  # no password and not a local demo: refuse before starting
    if settings.api_only and not settings.prefect_api_url:
        raise ConfigurationError("MISSION_API_ONLY needs MISSION_PREFECT_API_URL (a shared server)")
    settings.home.mkdir(parents=True, exist_ok=True)
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    with console.status("starting the Prefect server…"):
        server = connect(
            settings.home, settings.prefect_port, settings.prefect_api_url, database_url
        )
    # Goal runs keep Prefect's client retries (a server hiccup must not fail them); the API
    # answers 503 within seconds while Prefect is unreachable instead of retrying a lost
    # connection for a minute (5 retries with backoff) before it says anything.
    runner_env = dict(os.environ)
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "1")
    runner: Runner | None = None
    try:
        import uvicorn
        from prefect.settings import PREFECT_UI_URL

        from api.main import create_app
        from flows.serve import ensure_zombie_automation
        from tasks.tier_gate import ensure_tier_limits

        with console.status("serving the compound-goal deployment…"):
            ensure_tier_limits(settings.limits)
            ensure_zombie_automation(settings.zombie_after_s)
            if not settings.api_only:  # with MISSION_API_ONLY, workers run the goals
                runner = Runner.start(
                    settings, runner_env, lambda why: console.print(f"[yellow]{why}[/yellow]")
                )
                runner.wait_until_serving()
        app = create_app(settings)
        base = f"http://{settings.host}:{settings.port}"
        endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "api.anthropic.com"
        console.print(f"[bold]Mission Control[/bold] page:  {base}/tasks")
        console.print(f"API docs:   {base}/docs")
        console.print(f"Prefect UI: {PREFECT_UI_URL.value()}")
        if settings.resolved_provider == "simulated":
            console.print("models:     [yellow]SIMULATED[/yellow] (labelled so in every result)")
        else:
            console.print(f"models:     Anthropic, real ({endpoint})")
        if settings.local_demo:
            console.print("[yellow]local demo: no password; listening on loopback only[/yellow]")
        console.print("Ctrl-C stops everything.")
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
            proxy_headers=True,
        )
        return 0
    finally:
        with console.status("stopping…"):
            if runner is not None:
                runner.stop()
            if server is not None:
                server.stop()
        console.print("stopped.")
