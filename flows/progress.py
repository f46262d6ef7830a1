"""Read a goal run's progress document from the Prefect API, and watch it change."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import Artifact, TaskRun
from prefect.events import Event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_UI_URL
from pydantic import BaseModel

from core.errors import InvalidInput
from core.pricing import Usage
from core.progress import (
    STATE_BUCKETS,
    SUBTASK_TERMINAL,
    BudgetReport,
    Learned,
    ProgressDocument,
    SubtaskProgress,
    UsageReport,
    count_states,
)
from core.settings import Settings, get_settings
from flows.compile import SUBTASK_RUN_NAME
from tasks.budget import BUDGET_ARTIFACT
from tasks.records import RECORD_PREFIX
from tasks.subtask import SubtaskResult

PAGE = 200  # the Prefect server caps a page at 200 rows
# Prefect's wording around a task's exception; our own messages already say what failed.
_PREFECT_PREFIX = re.compile(r"^Task run encountered an exception (?:[\w.]+: )?")


class UnknownGoalRun(InvalidInput):
    """No goal run has this id."""


def prefect_run_url(flow_run_id: UUID | str) -> str:
    base = PREFECT_UI_URL.value() or ""
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"


async def _all(client: PrefectClient, path: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a Prefect filter endpoint, page by page (one helper for both readers)."""
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.request(
            "POST", path, json={**body, "limit": PAGE, "offset": len(rows)}
        )
        response.raise_for_status()
        page = response.json()
        rows.extend(page)
        if len(page) < PAGE:
            return rows


async def _task_runs(client: PrefectClient, flow_run_id: UUID) -> list[TaskRun]:
    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}, "sort": "EXPECTED_START_TIME_ASC"}
    return [TaskRun.model_validate(r) for r in await _all(client, "/task_runs/filter", body)]


def subtask_runs(task_runs: list[TaskRun]) -> dict[str, TaskRun]:
    """Each subtask's latest task run, by subtask id (a re-run's run wins)."""
    latest: dict[str, TaskRun] = {}
    for run in task_runs:  # oldest first
        match = SUBTASK_RUN_NAME.match(run.name)
        if match:
            latest[match.group(1)] = run
    return latest


async def _artifacts(client: PrefectClient, flow_run_id: UUID) -> list[Artifact]:
    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "sort": "CREATED_DESC"}
    return [Artifact.model_validate(r) for r in await _all(client, "/artifacts/filter", body)]


class SubtaskDetail(BaseModel):
    """One subtask's full output (the progress document carries only its learned line)."""

    id: str
    state: str
    learned: str | None = None
    output: str | None = None
    error: str | None = None


async def read_subtask(client: PrefectClient, flow_run_id: UUID, subtask_id: str) -> SubtaskDetail:
    """The subtask's output, from its task run's persisted result (on the runner's disk)."""
    run = subtask_runs(await _task_runs(client, flow_run_id)).get(subtask_id)
    if run is None or run.state is None:
        raise UnknownGoalRun(f"goal run {flow_run_id} has no started subtask {subtask_id!r}")
    state = run.state
    detail = SubtaskDetail(id=subtask_id, state=state.name or "Pending")
    if state.is_completed():
        try:
            value = await state.aresult(raise_on_failure=False)
        except Exception as exc:  # e.g. the result lives on another machine's disk
            detail.error = f"the output is not readable from here: {exc}"
            return detail
        if isinstance(value, SubtaskResult):
            detail.learned, detail.output = value.learned or None, value.output or None
            detail.error = value.reason
    elif state.is_failed() or state.is_crashed() or state.is_cancelled():
        detail.error = state.message
    return detail


async def read_plan(client: PrefectClient, flow_run_id: UUID) -> dict[str, Any]:
    """The goal run's current plan in the plan file's format (what approve accepts edited)."""
    flow_run = await client.read_flow_run(flow_run_id)
    rows: list[dict[str, Any]] = []
    for artifact in reversed(await _artifacts(client, flow_run_id)):  # oldest first
        if artifact.key == "goal-plan":
            rows = _table(artifact.data)
    if not rows:
        raise UnknownGoalRun(f"goal run {flow_run_id} has no plan yet")
    subtasks = []
    for row in rows:
        subtask: dict[str, Any] = {
            "id": row["id"],
            "title": row["title"],
            "instruction": row.get("instruction", ""),
            "kind": row["kind"],
            "tier": row["tier"],
            "depends_on": [
                d.strip() for d in (row.get("depends_on") or "").split(",") if d.strip()
            ],
        }
        if row.get("temperature") is not None:
            subtask["temperature"] = row["temperature"]
        if row.get("url"):
            subtask["url"] = row["url"]
        subtasks.append(subtask)
    return {"goal": str(flow_run.parameters.get("goal", "")), "subtasks": subtasks}


def _dependencies(row: dict[str, Any]) -> list[str]:
    """A plan table row's `depends_on` cell ("a, b") as a list."""
    return [d.strip() for d in (row.get("depends_on") or "").split(",") if d.strip()]


def _table(data: Any) -> list[dict[str, Any]]:
    rows = json.loads(data) if isinstance(data, str) else data
    return rows if isinstance(rows, list) else []


async def read_progress(
    client: PrefectClient,
    flow_run_id: UUID | str,
    settings: Settings | None = None,
    seen: Mapping[str, SeenState] | None = None,
) -> ProgressDocument:
    """The progress document of one goal run, built only from what Prefect holds.

    `seen`: subtask states announced by events, used where they are newer than the database.
    """
    settings = settings or get_settings()
    try:
        run_id = UUID(str(flow_run_id))
    except ValueError:
        raise UnknownGoalRun(f"{flow_run_id!r} is not a goal run id (a UUID)") from None
    try:
        flow_run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise UnknownGoalRun(f"no goal run has id {run_id}") from None
    task_runs, artifacts = await asyncio.gather(
        _task_runs(client, run_id), _artifacts(client, run_id)
    )

    plan_rows: list[dict[str, Any]] = []
    outcome: dict[str, dict[str, Any]] = {}
    result: str | None = None
    exceeded: str | None = None
    records: list[dict[str, Any]] = []
    for artifact in reversed(artifacts):  # oldest first
        if artifact.key == "goal-plan":
            plan_rows = _table(artifact.data)
        elif artifact.key == "goal-outcome":
            rows = _table(artifact.data)
            # A retried goal run's earlier attempt left its own outcome and result: once the
            # new attempt runs (run_count grows), they no longer describe it.
            current = all(row.get("attempt", 1) == flow_run.run_count for row in rows)
            outcome = {row["id"]: row for row in rows} if current else {}
            result = None
        elif artifact.key == "goal-result" and outcome:
            result = str(artifact.data)
        elif artifact.key == BUDGET_ARTIFACT:
            exceeded = artifact.description
        elif (artifact.description or "").startswith(RECORD_PREFIX):
            records.extend(_table(artifact.data))

    latest = subtask_runs(task_runs)

    by_step: dict[str, dict[str, Any]] = {}
    learned: list[Learned] = []
    total = Usage()
    by_tier: dict[str, Usage] = {}
    for row in records:
        by_step[row["step"]] = row
        call = Usage(
            input_tokens=row.get("input_tokens", 0),
            output_tokens=row.get("output_tokens", 0),
            cost_usd=row.get("cost_usd", 0.0),
        )
        total = total + call
        tier = row.get("tier") or "unknown"
        by_tier[tier] = by_tier.get(tier, Usage()) + call
        if row.get("status") == "ok" and row.get("learned") and row["step"] != "planner":
            learned.append(
                Learned(
                    subtask=row["step"], text=row["learned"], at=datetime.fromisoformat(row["at"])
                )
            )
    learned.sort(key=lambda item: item.at)

    subtasks: list[SubtaskProgress] = []
    for p in plan_rows:
        run = latest.get(p["id"])
        run_state = run.state if run is not None else None
        state = run_state.name if run_state is not None and run_state.name else "Pending"
        final = outcome.get(p["id"])
        message = run_state.message if run_state is not None else None
        started_at: datetime | None = run.start_time if run is not None else None
        ended_at: datetime | None = run.end_time if run is not None else None
        announced = (seen or {}).get(p["id"])
        if announced is not None and (run_state is None or run_state.timestamp < announced.at):
            state, message = announced.name, announced.message
            if STATE_BUCKETS.get(state) == "running":
                started_at = started_at or announced.at
            elif state in SUBTASK_TERMINAL:
                ended_at = announced.at
        if final is not None and state not in SUBTASK_TERMINAL:
            state, message, ended_at = final["state"], final["message"], _when(final["at"])
        row = by_step.get(p["id"], {})
        error = None
        if STATE_BUCKETS.get(state) in ("failed", "skipped"):
            error = _PREFECT_PREFIX.sub("", message or "") or row.get("error")
        subtasks.append(
            SubtaskProgress(
                id=p["id"],
                title=p["title"],
                kind=p["kind"],
                tier=p["tier"],
                model=row.get("model") or _model_of(p["tier"], settings),
                state=state,
                depends_on=_dependencies(p),
                started_at=started_at,
                ended_at=ended_at,
                learned=row.get("learned") if row.get("status") == "ok" else None,
                error=error,
            )
        )

    providers = {row.get("provider") for row in records if row.get("provider")}
    limits = flow_run.parameters.get("budget")
    budget = BudgetReport(**limits, exceeded=exceeded) if isinstance(limits, dict) else None
    goal_state = flow_run.state
    return ProgressDocument(
        id=str(run_id),
        goal=str(flow_run.parameters.get("goal", "")),
        state=goal_state.name if goal_state is not None else "Pending",
        message=goal_state.message if goal_state is not None else None,
        created_at=flow_run.created,
        updated_at=flow_run.updated,
        prefect_url=prefect_run_url(run_id),
        provider=providers.pop() if len(providers) == 1 else settings.resolved_provider,
        subtasks=subtasks,
        counts=count_states(subtasks),
        learned=learned,
        result=result,
        usage=UsageReport(**total.model_dump(), by_tier=by_tier),
        budget=budget,
    )


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _model_of(tier: str, settings: Settings) -> str | None:
    spec = settings.tiers.get(tier)
    return spec.model if spec is not None else None


@dataclass(frozen=True)
class SeenState:
    """A subtask state as Prefect's event stream announced it, before the database has it."""

    name: str
    message: str | None
    at: datetime


def subtask_state_event(event: Event) -> tuple[str, SeenState] | None:
    """(subtask id, state) from a task-run state event of a subtask; None for other events."""
    if not event.event.startswith("prefect.task-run."):
        return None
    match = SUBTASK_RUN_NAME.match(event.resource.get("prefect.resource.name") or "")
    name = event.resource.get("prefect.state-name")
    if match is None or not name:
        return None
    return match.group(1), SeenState(
        name, event.resource.get("prefect.state-message"), event.occurred
    )


def _stage(state: str) -> int:
    bucket = STATE_BUCKETS.get(state, "pending")
    return 0 if bucket == "pending" else 1 if bucket == "running" else 2


def with_announced(doc: ProgressDocument, seen: Mapping[str, SeenState]) -> ProgressDocument:
    """The document with the subtask states events announced since it was read, so a change
    is shown before the next read of the database (a state never moves backwards here)."""
    subtasks = []
    for s in doc.subtasks:
        announced = seen.get(s.id)
        if (
            announced is not None
            and announced.name != s.state
            and s.state not in SUBTASK_TERMINAL
            and _stage(announced.name) >= _stage(s.state)
        ):
            update: dict[str, Any] = {"state": announced.name}
            if _stage(announced.name) == 1:
                update["started_at"] = s.started_at or announced.at
            elif announced.name in SUBTASK_TERMINAL:
                update["ended_at"] = announced.at
            s = s.model_copy(update=update)
        subtasks.append(s)
    return doc.model_copy(update={"subtasks": subtasks, "counts": count_states(subtasks)})


async def watch_progress(
    client: PrefectClient, flow_run_id: UUID
) -> AsyncIterator[ProgressDocument]:
    """Yield the progress document now and again each time it changes; ends after a terminal
    document.

    Changes are pushed by Prefect's event stream; there is no polling loop. A subtask's new
    state is shown from its event at once, then the document is read again (the database
    records the state a moment later; learned text and usage arrive as artifacts); events
    that arrive while the document is being read are folded into the next read.
    """
    seen: dict[str, SeenState] = {}
    doc = await read_progress(client, flow_run_id, seen=seen)
    yield doc
    if doc.finished:
        return
    changed = asyncio.Event()
    event_filter = EventFilter(
        any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])
    )
    async with get_events_subscriber(filter=event_filter) as subscriber:

        async def pump() -> None:
            async for event in subscriber:
                if (found := subtask_state_event(event)) is not None:
                    subtask, state = found
                    if subtask not in seen or seen[subtask].at <= state.at:
                        seen[subtask] = state
                changed.set()

        pumping = asyncio.create_task(pump())
        try:
            changed.set()  # read once more: something may have happened while subscribing
            while True:
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({waiter, pumping}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if pumping.done():
                    pumping.result()  # the stream failed: raise its error
                    return
                changed.clear()
                early = with_announced(doc, seen)
                if early != doc:  # a subtask changed state: show it now, read the rest next
                    doc = early
                    yield doc
                latest = await read_progress(client, flow_run_id, seen=seen)
                if latest != doc:
                    doc = latest
                    yield doc
                if doc.finished:
                    return
        finally:
            pumping.cancel()
