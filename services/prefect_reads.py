"""Reads of a goal run's rows from the Prefect API, page by page, and its link in the UI."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import Artifact, TaskRun

from core.artifacts import SNAPSHOT_TYPE
from core.goal_run import prefect_run_url as prefect_run_url
from core.goal_run import subtask_id_of

PAGE = 200  # the Prefect server caps a page at 200 rows


async def _all(client: PrefectClient, path: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a Prefect filter endpoint, page by page."""
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.request(
            "POST",
            path,
            json={**body, "limit": PAGE, "offset": len(rows)},
        )
        response.raise_for_status()
        page = response.json()
        rows.extend(page)
        if len(page) < PAGE:
            return rows


async def task_runs(client: PrefectClient, flow_run_id: UUID) -> list[TaskRun]:
    """The goal run's task runs, oldest first."""
    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return [TaskRun.model_validate(r) for r in await _all(client, "/task_runs/filter", body)]


def subtask_runs(runs: list[TaskRun]) -> dict[str, TaskRun]:
    """Each subtask's latest task run, by subtask id (a re-run's run wins)."""
    latest: dict[str, TaskRun] = {}
    for run in runs:  # oldest first
        subtask = subtask_id_of(run.name)
        if subtask is not None:
            latest[subtask] = run
    return latest


async def artifacts(client: PrefectClient, flow_run_id: UUID) -> list[Artifact]:
    """The goal run's artifacts, oldest first, but for the sources' text snapshots (read
    one at a time, by `snapshots`)."""
    body = {
        "artifacts": {
            "flow_run_id": {"any_": [str(flow_run_id)]},
            "type": {"not_any_": [SNAPSHOT_TYPE]},
        },
        "sort": "CREATED_DESC",
    }
    rows = await _all(client, "/artifacts/filter", body)
    return [Artifact.model_validate(r) for r in reversed(rows)]


async def snapshots(client: PrefectClient, flow_run_id: UUID) -> list[Artifact]:
    """The text snapshots of the goal run's sources, oldest first."""
    body = {
        "artifacts": {
            "flow_run_id": {"any_": [str(flow_run_id)]},
            "type": {"any_": [SNAPSHOT_TYPE]},
        },
        "sort": "CREATED_DESC",
    }
    rows = await _all(client, "/artifacts/filter", body)
    return [Artifact.model_validate(r) for r in reversed(rows)]


async def artifacts_of_runs(client: PrefectClient, flow_run_ids: list[UUID]) -> list[Artifact]:
    """The artifacts of several goal runs but for their snapshots, oldest first."""
    body = {
        "artifacts": {
            "flow_run_id": {"any_": [str(i) for i in flow_run_ids]},
            "type": {"not_any_": [SNAPSHOT_TYPE]},
        },
        "sort": "CREATED_DESC",
    }
    rows = await _all(client, "/artifacts/filter", body)
    return [Artifact.model_validate(r) for r in reversed(rows)]
