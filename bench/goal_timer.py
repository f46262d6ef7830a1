"""What the makespan benchmarks share: the DAG, its latencies and limits, and one timed run
of the compound-goal flow against whichever Prefect server the process is connected to."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

LATENCY_MS = {"vision": 1000, "fast": 200, "structured": 400, "deep": 800, "writer": 600}
LIMITS = {"vision": 3, "fast": 4, "structured": 2, "deep": 2, "writer": 1}
SUBTASKS, SEED = 50, 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def simulated_env(home: Path) -> None:
    """The environment every makespan benchmark runs in: simulated models, no limits yet."""
    os.environ.update(
        MISSION_HOME=str(home),
        MISSION_PROVIDER="simulated",
        MISSION_SIMULATED_LATENCY_MS=",".join(f"{k}={v}" for k, v in LATENCY_MS.items()),
        MISSION_MAX_SUBTASKS="60",
        PREFECT_LOGGING_LEVEL="ERROR",
    )
    os.environ.pop("MISSION_TIER_LIMITS", None)
    os.environ.pop("MISSION_TIER_GATE", None)


@contextmanager
def simulated_server(prefix: str) -> Iterator[None]:
    """A Prefect server of its own in a fresh home, this process connected to it, in the
    simulated environment; stopped on the way out."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    simulated_env(home)
    from core.local_server import PrefectServer, connect

    server = PrefectServer(home=home, port=free_port())
    server.start()
    try:
        connect(home, server.port, server.api_url)
        yield
    finally:
        server.stop()


def fresh_settings() -> None:
    """Make the next goal run read the MISSION_* environment again."""
    from core import gateway
    from core.settings import forget_settings

    forget_settings()
    gateway._providers.clear()


@contextmanager
def tier_limits(gate: str) -> Iterator[None]:
    """The benchmark's tier limits, enforced by `gate` (local | prefect), for the block."""
    os.environ["MISSION_TIER_LIMITS"] = ",".join(f"{k}={v}" for k, v in LIMITS.items())
    os.environ["MISSION_TIER_GATE"] = gate
    fresh_settings()
    try:
        yield
    finally:
        del os.environ["MISSION_TIER_GATE"], os.environ["MISSION_TIER_LIMITS"]
        fresh_settings()


@contextmanager
def zero_latency_chain(links: int) -> Iterator[None]:
    """Models that answer at once and a plan limit deep enough for a chain of `links`."""
    saved = {k: os.environ.get(k) for k in ("MISSION_SIMULATED_LATENCY_MS", "MISSION_MAX_DEPTH")}
    os.environ.update(MISSION_SIMULATED_LATENCY_MS="default=0", MISSION_MAX_DEPTH=str(links + 1))
    fresh_settings()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        fresh_settings()


@contextmanager
def prefect_tag_limits() -> Iterator[None]:
    """Prefect's stock mechanism instead of ours: tag concurrency limits on the tier tags."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for tier, limit in LIMITS.items():
            client.upsert_global_concurrency_limit_by_name(f"tag:tier:{tier}", limit)
    try:
        yield
    finally:
        with get_client(sync_client=True) as client:
            for tier in LIMITS:
                client.delete_global_concurrency_limit_by_name(f"tag:tier:{tier}")


class GoalTimer:
    """Runs the benchmark DAG through the compound-goal flow and times it."""

    def __init__(self, plan_data: dict[str, Any] | None = None) -> None:
        from bench.executors import random_dag
        from core.plan import validate_plan
        from core.settings import get_settings

        self.plan_data: dict[str, Any] = plan_data or random_dag(SUBTASKS, SEED)
        self.plan = validate_plan(self.plan_data, get_settings().plan_limits())
        self.last_run: UUID | None = None

    def __call__(self) -> float:
        """Seconds from the call to the goal run's terminal state (when the page, the CLI and
        the API see the result). The goal run is made and run as `mission run --plan` makes
        and runs it (flows/inline.py), with the Prefect clients' TLS context shared as in the
        warm runner's goal runs."""
        from core.goal_run import GoalParameters
        from core.prefect_compat import share_tls_context
        from core.settings import get_settings
        from flows.inline import create_goal_run, execute_goal_run

        share_tls_context()
        settings = get_settings()
        parameters = GoalParameters.build(
            self.plan.goal,
            plan={"subtasks": self.plan_data["subtasks"]},
            max_goal_chars=settings.max_goal_chars,
            limits=settings.plan_limits(),
        )
        started = time.time()
        state = execute_goal_run(create_goal_run(parameters))
        if not state.is_completed():
            raise SystemExit(f"benchmark goal run did not complete: {state.message}")
        self.last_run = state.state_details.flow_run_id
        return state.timestamp.timestamp() - started
