"""`mission up`: the whole stack in one command (Prefect server, runner, API + page)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from rich.console import Console

from core.errors import ConfigurationError
from core.local_server import connect, stop_process_group
from core.settings import Settings

DEPLOYMENT_WAIT_S = 60.0


@dataclass
class Runner:
    """The `python -m flows.serve` process; each goal run is a child process of it."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, settings: Settings) -> Runner:
        env = dict(os.environ)
        env.update(
            # How often the runner asks for new goal runs: the floor of submit -> start.
            PREFECT_RUNNER_POLL_FREQUENCY=str(settings.runner_poll_s),
            # Goal runs send heartbeats so a dead runner's runs end Crashed (see flows.serve).
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(settings.heartbeat_s),
        )
        log = open(settings.home / "runner.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process)

    def wait_until_serving(self, settings: Settings) -> None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        from flows.serve import DEPLOYMENT_PATH

        deadline = time.monotonic() + DEPLOYMENT_WAIT_S
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ConfigurationError(
                        f"the runner exited at start; see {settings.home / 'runner.log'}"
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
        """SIGTERM to the runner and its goal runs (they end Crashed), SIGKILL if they linger."""
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
                runner = Runner.start(settings)
                runner.wait_until_serving(settings)
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
