"""`mission up`: the whole stack in one command (Prefect server, runner, API + page)."""

from __future__ import annotations

import os
from collections.abc import Callable

from rich.console import Console

from cli.doctor import check_before_up
from cli.runner import Runner
from core.errors import ConfigurationError
from core.local_server import auth_hint, connect
from core.settings import Settings
from core.stream import delta_socket


def _say(console: Console) -> Callable[[str], None]:
    def say(what: str) -> None:
        console.print(f"[yellow]{what}[/yellow]")

    return say


def cmd_up(settings: Settings, console: Console, go_on: bool = False) -> int:
    from api.auth import Gate

    Gate.from_settings(settings)  # no password and not a local demo: refuse before starting
    if not settings.api_only:  # this process's runner will call the models: can it?
        check_before_up(settings, console, go_on)
    if settings.api_only and not settings.prefect_api_url:
        raise ConfigurationError("MISSION_API_ONLY needs MISSION_PREFECT_API_URL (a shared server)")
    settings.home.mkdir(parents=True, exist_ok=True)
    database_url = settings.database_url.get_secret_value() if settings.database_url else None
    with console.status("starting the Prefect server…"):
        server = connect(
            settings.home, settings.prefect_port, settings.prefect_api_url, database_url
        )
    # The runner's goal runs keep Prefect's client retries; the API makes no retries of its
    # own through Prefect's client (its writes are retried sooner by flows.busy, and while
    # the server is away it answers 503 at once instead of after a minute of backoff).
    runner_env = dict(os.environ)
    if settings.redis_url is None:  # streamed output: this API's own socket, for its runner
        socket_path = delta_socket(settings.home, os.getpid())
        runner_env["MISSION_DELTA_SOCKET"] = str(socket_path)
        settings = settings.model_copy(update={"delta_socket": socket_path})
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "0")
    runner: Runner | None = None
    try:
        import uvicorn
        from prefect.settings import PREFECT_UI_URL

        from api.main import create_app
        from api.slow_clients import with_header_deadline
        from core.tier_limits import ensure_tier_limits
        from services.crashes import ensure_zombie_automation

        with console.status("serving the compound-goal deployment…"):
            ensure_tier_limits(settings.limits)
            if settings.api_only:
                # Workers run the goals, maybe on other machines: a goal run whose worker dies
                # is found by its missing heartbeats (the workers send them).
                ensure_zombie_automation(settings.zombie_after_s)
            else:
                runner = Runner(settings, runner_env, _say(console))
                runner.wait_until_serving()
        app = create_app(settings)
        base = f"http://{settings.host}:{settings.port}"
        endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "api.anthropic.com"
        console.print(f"[bold]Mission Control[/bold] page:  {base}/tasks")
        console.print(f"API docs:   {base}/docs")
        console.print(f"Prefect UI: {PREFECT_UI_URL.value()} ({auth_hint(settings.home)})")
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
            # A request's head must arrive within MISSION_HEADER_TIMEOUT_S (slowloris).
            http=with_header_deadline(settings.header_timeout_s),
            # X-Forwarded-For / -Proto only from MISSION_TRUSTED_PROXIES (none by default:
            # uvicorn's own default believes any client on 127.0.0.1, which could then pick
            # its own address for the login throttle with a new header value every try).
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies,
        )
        return 0
    finally:
        with console.status("stopping…"):
            if runner is not None:
                runner.stop()
            if server is not None:
                server.stop()
        console.print("stopped.")
