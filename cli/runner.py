"""The embedded stack's runner (`python -m flows.serve`), supervised by `mission up`.

Each goal run is a child process of the runner, in its process group. When a goal run's
process dies, the runner marks it Crashed (Prefect does that). When the runner itself dies,
the watcher here stops what is left of its group, marks the goal runs it was running Crashed
at once (they can be retried) and starts a new runner. A runner that died with `mission up`
(a killed terminal, a reboot) leaves its pid file behind; the next start sees it and marks
the goal runs left behind Crashed. This needs no heartbeats and no automation: on SQLite an
automation costs every event of every goal run a write lock (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import ConfigurationError
from core.goal_run import DEPLOYMENT_PATH
from core.local_server import stop_process_group
from core.settings import Settings

DEPLOYMENT_WAIT_S = 60.0
RESTARTS_PER_MINUTE = 5


def _crash_active(why: str) -> int:
    """Mark the served deployment's goal runs that had a process Crashed; how many."""
    from prefect.client.orchestration import get_client

    from services.crashes import crash_active_runs

    async def crash() -> int:
        async with get_client() as client:
            return len(await crash_active_runs(client, DEPLOYMENT_PATH, why))

    return asyncio.run(crash())


def _alive_runner(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or b"flows.serve" in cmdline.read_bytes()


class Runner:
    def __init__(
        self, settings: Settings, env: dict[str, str], on_event: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.env = env
        self.on_event = on_event
        self.pid_file = settings.home / "runner.pid"
        self._take_over_pid_file()
        self.process = self._spawn()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="runner-watch", daemon=True)
        self._watcher.start()

    def _take_over_pid_file(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return  # a fresh home, or the last stack stopped cleanly
        if _alive_runner(pid):
            raise ConfigurationError(
                f"a runner started by an earlier `mission up` (pid {pid}) still serves "
                f"{self.settings.home}; stop it (kill {pid}) or use another MISSION_HOME"
            )
        crashed = _crash_active("the stack stopped while this goal ran; retry it to go on")
        if crashed:
            self.on_event(f"{crashed} goal run(s) left by the last stack marked Crashed")

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        # How often Prefect's stock runner asks for new goal runs (the warm one is told at
        # once by events and polls only as a safety net: flows/warm_runner.py).
        env["PREFECT_RUNNER_POLL_FREQUENCY"] = str(self.settings.runner_poll_s)
        log = open(self.settings.home / "runner.log", "ab")  # noqa: SIM115 - for the child
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"]
            + (["--stock"] if self.settings.runner == "stock" else []),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(str(process.pid))
        return process

    def _watch(self) -> None:
        restarts: list[float] = []
        while True:
            code = self.process.wait()
            with self._lock:
                if self._stopping.is_set():
                    return
                # Its goal runs are in its process group: they go with it (their tier
                # slots come back), and are marked Crashed now rather than never.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            crashed = _crash_active(f"the runner stopped (exit code {code}) while this goal ran")
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > RESTARTS_PER_MINUTE:
                self.on_event(
                    f"the runner keeps exiting (last code {code}); not starting it again: "
                    f"see {self.settings.home / 'runner.log'}"
                )
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.process = self._spawn()
            self.on_event(
                f"the runner exited (code {code}); {crashed} goal run(s) marked Crashed; "
                "started a new runner"
            )

    def wait_until_serving(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

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
        self.pid_file.unlink(missing_ok=True)
