"""Recurring goals over REST against the real stack: Prefect deployment schedules whose
parameters are the goal, and whose runs are ordinary goal runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun

from core.goal_run import DEPLOYMENT_NAME, DEPLOYMENT_PATH
from core.plan import PlanLimits
from services import schedules
from tests.api.conftest import STACK_ENV, Stack, plan
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import start_stack, stop_stack

pytestmark = pytest.mark.slow


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """A client for the stack that deletes every recurring goal the test left behind."""
    with stack.client() as client:
        yield client
        for item in client.get("/schedules").json()["items"]:
            client.delete(f"/schedules/{item['id']}")


def _ids(client: httpx.Client) -> set[str]:
    response = client.get("/schedules")
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_cron_schedule_is_created_with_its_timezone_goal_and_next_runs(
    api: httpx.Client,
) -> None:
    created = api.post(
        "/schedules",
        json={"goal": "weekly digest", "cron": "0 8 * * 1", "timezone": "Europe/Paris",
              "budget": {"max_tokens": 5000}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["goal"], body["cron"], body["interval_s"]) == ("weekly digest", "0 8 * * 1", None)
    assert body["timezone"] == "Europe/Paris" and body["active"] is True
    assert body["budget"] == {"max_tokens": 5000}
    first = datetime.fromisoformat(body["next_runs"][0]).astimezone(UTC)
    assert first.weekday() == 0 and first.hour in (6, 7)  # 08:00 in Paris (summer or winter)
    assert body["id"] in _ids(api)


def test_interval_schedule_is_created_and_listed(api: httpx.Client) -> None:
    created = api.post("/schedules", json={"goal": "hourly check", "interval_s": 3600})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["interval_s"] == 3600 and body["cron"] is None and body["timezone"] == "UTC"
    listed = {i["id"]: i for i in api.get("/schedules").json()["items"]}
    assert listed[body["id"]]["goal"] == "hourly check"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"goal": "g", "cron": "99 * * *"}, "Invalid cron string"),
        ({"goal": "g", "cron": "0 8 * * 1", "interval_s": 3600}, "exactly one of"),
        ({"goal": "g"}, "exactly one of"),
        ({"goal": "g", "interval_s": 10}, "between 60 s (the shortest)"),
        ({"goal": "g", "interval_s": 3.6e171}, "and 31622400 s (a year)"),
        ({"goal": "g", "cron": "0 8 * * 1", "timezone": "Mars/Olympus"}, "Invalid timezone"),
        ({"goal": "  ", "interval_s": 3600}, "the goal is empty"),
        ({"goal": "g", "interval_s": 3600, "plan": {"subtasks": []}}, "subtask"),
        ({"goal": "g", "interval_s": 3600, "budget": {"max_tokens": 0}}, "max_tokens"),
    ],
    ids=["bad cron", "cron and interval", "neither", "10 s", "10^171 s", "unknown timezone",
         "empty goal", "bad plan", "bad budget"],
)  # fmt: skip
def test_invalid_schedule_is_refused_with_a_readable_422_and_nothing_is_created(
    api: httpx.Client, body: dict[str, Any], says: str
) -> None:
    before = _ids(api)
    response = api.post("/schedules", json=body)
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]
    assert _ids(api) == before


def test_schedule_pauses_resumes_and_deletes_and_unknown_ids_are_404(api: httpx.Client) -> None:
    body = {"goal": "toggle me", "interval_s": 600, "budget": {"max_seconds": 60}}
    sid = api.post("/schedules", json=body).json()["id"]

    paused = api.post(f"/schedules/{sid}/pause")
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert paused.json()["next_runs"] == []
    resumed = api.post(f"/schedules/{sid}/resume")
    assert resumed.status_code == 200 and resumed.json()["active"] is True
    assert len(resumed.json()["next_runs"]) == 3
    # Pausing and resuming keep what the recurring goal runs.
    assert (resumed.json()["goal"], resumed.json()["budget"]) == ("toggle me", {"max_seconds": 60})

    assert api.delete(f"/schedules/{sid}").status_code == 204
    assert sid not in _ids(api)
    unknown = "00000000-0000-0000-0000-000000000000"
    for method, path in [("POST", f"/{unknown}/pause"), ("POST", f"/{unknown}/resume"),
                         ("DELETE", f"/{unknown}"), ("DELETE", f"/{sid}")]:  # fmt: skip
        response = api.request(method, f"/schedules{path}")
        assert response.status_code == 404, (method, path)
        assert response.json()["detail"].startswith("no recurring goal has id")


def test_schedules_need_authentication(stack: Stack) -> None:
    with stack.client(token=None) as client:
        assert client.get("/schedules").status_code == 401
        assert client.post("/schedules", json={"goal": "g", "interval_s": 60}).status_code == 401


def test_schedules_survive_a_restart_of_the_runner(
    api: httpx.Client, prefect_server: str, tmp_path: Path
) -> None:
    sid = api.post("/schedules", json={"goal": "survives", "cron": "0 8 * * *"}).json()["id"]
    # A second `mission up` re-registers the deployment, as every start of the runner does.
    again = start_stack(prefect_server, MISSION_HOME=str(tmp_path), **STACK_ENV)
    try:
        with again.client() as other:
            assert sid in _ids(other)
    finally:
        stop_stack(again)
    assert sid in _ids(api)


async def _runs_of(goal: str) -> list[FlowRun]:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT_NAME]))
        )
    return [run for run in runs if run.parameters.get("goal") == goal]


def _final_progress(stack: Stack, run_id: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    with stack.client() as client:
        while True:
            doc: dict[str, Any] = client.get(f"/task/{run_id}/progress").json()
            if doc["state"] in {"Completed", "Failed", "Crashed", "Cancelled"}:
                return doc
            assert time.monotonic() < deadline, f"the scheduled run is still {doc['state']}"
            time.sleep(0.5)


def test_schedule_produces_a_goal_run_with_its_parameters_that_completes(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    goal = f"scheduled goal {time.time_ns()}"
    ready = plan(("tick", []))
    spec = schedules.build_spec(
        goal,
        interval_s=3600,
        plan=ready,
        budget={"max_tokens": 100_000},
        max_goal_chars=10_000,
        limits=PlanLimits(tiers=frozenset({"fast"})),
        # Prefect's scheduler only creates runs that start after it looks (its loop for
        # recently changed deployments runs every 5 s), so the first run is due in 12 s.
        anchor=datetime.now(UTC) + timedelta(seconds=12),
    )

    async def create() -> UUID:
        async with get_client() as client:
            return (await schedules.create_schedule(client, DEPLOYMENT_PATH, spec, 50)).id

    sid = asyncio.run(create())
    try:
        deadline = time.monotonic() + 30
        while not (runs := asyncio.run(_runs_of(goal))):
            assert time.monotonic() < deadline, "the schedule created no goal run"
            time.sleep(0.5)
        # Prefect creates a few upcoming runs ahead; each carries the schedule's parameters.
        assert all(r.parameters == spec.parameters.as_prefect() for r in runs)
        run = min(runs, key=lambda r: r.expected_start_time or datetime.max.replace(tzinfo=UTC))
        assert run.parameters["budget"] == {"max_tokens": 100_000}
        assert run.created_by is not None and run.created_by.type == "SCHEDULE"
        anchor = spec.schedule.anchor_date  # type: ignore[union-attr]
        assert run.expected_start_time is not None
        assert abs((run.expected_start_time - anchor).total_seconds()) < 1  # the first start

        doc = _final_progress(stack, str(run.id), within_s=60)
        assert doc["state"] == "Completed" and doc["goal"] == goal
        assert len(fake_anthropic.calls_for("Subtask id: tick")) == 1
        with stack.client() as client:
            history = client.get("/task?limit=50").json()["items"]
        assert str(run.id) in {item["id"] for item in history}
    finally:
        with stack.client() as client:
            client.delete(f"/schedules/{sid}")


def _store_in_prefect(goal: str, cron: str) -> UUID:
    """A schedule on the goal deployment made around the API (the Prefect UI, or a schedule
    stored before its cron was checked)."""
    from prefect.client.schemas.schedules import CronSchedule

    async def create() -> UUID:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(DEPLOYMENT_PATH)
            made = await client.create_deployment_schedules(
                deployment.id, [(CronSchedule(cron=cron), True)], parameters={"goal": goal}
            )
            return made[0].id

    return asyncio.run(create())


def test_a_cron_that_never_fires_is_refused_and_one_stored_in_prefect_breaks_no_route(
    api: httpx.Client,
) -> None:
    for cron in ("0 0 31 2 *", "0 0 30 2 *"):
        refused = api.post("/schedules", json={"goal": "never", "cron": cron})
        assert refused.status_code == 422, refused.text
        assert "never fires" in refused.json()["detail"]

    bad = str(_store_in_prefect("stored around the API", "0 0 31 2 *"))
    good = api.post("/schedules", json={"goal": "fine", "cron": "0 8 * * *"})
    assert good.status_code == 201, good.text
    listed = api.get("/schedules")
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert items[bad]["next_runs"] == [] and len(items[good.json()["id"]]["next_runs"]) == 3
    for sid in (good.json()["id"], bad):
        for action in ("pause", "resume"):
            response = api.post(f"/schedules/{sid}/{action}")
            assert response.status_code == 200, (sid, action, response.text)
        assert api.delete(f"/schedules/{sid}").status_code == 204
    assert not {good.json()["id"], bad} & _ids(api)
