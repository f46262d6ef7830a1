"""Read a goal run's progress document, its plan and one subtask's output from Prefect.

The document is built in three steps, each its own function: read what the goal run stored
(its artifacts, typed by core.artifacts), fold the attempt records (learned lines, usage,
each step's latest attempt), and merge each subtask's state from its task run, the flow's
outcome table and the states events announced before the database had them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import Artifact, FlowRun, TaskRun
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel

from core.artifacts import (
    BUDGET_KEY,
    OUTCOME_KEY,
    PLAN_KEY,
    RECORD_PREFIX,
    REPLANS_KEY,
    RESULT_KEY,
    SOURCES_PREFIX,
    AttemptRecord,
    OutcomeRow,
    PlanRow,
    SubtaskResult,
    parse_rows,
    screenshot_path,
    snapshot_id,
)
from core.citations import CitationReport
from core.errors import InvalidInput
from core.pricing import Usage
from core.progress import (
    BudgetReport,
    Learned,
    ProgressDocument,
    SubtaskProgress,
    TierReport,
    UsageReport,
    count_states,
)
from core.revision import Replan
from core.settings import Settings, get_settings
from core.sources import Source
from core.states import bucket_of, has_ended
from services import prefect_reads
from services.forecast import forecast_plan
from services.prefect_reads import prefect_run_url

# Prefect's wording around a task's exception; our own messages already say what failed.
_PREFECT_PREFIX = re.compile(r"^Task run encountered an exception (?:[\w.]+: )?")


class UnknownGoalRun(InvalidInput):
    """No goal run has this id."""


@dataclass(frozen=True)
class SeenState:
    """A subtask state as Prefect's event stream announced it, before the database has it."""

    name: str
    message: str | None
    at: datetime


@dataclass
class Stored:
    """What a goal run has stored so far, as the current attempt of the run sees it."""

    plan: list[PlanRow] = field(default_factory=list)
    outcome: dict[str, OutcomeRow] = field(default_factory=dict)
    result: str | None = None
    halted: str | None = None
    records: list[AttemptRecord] = field(default_factory=list)
    sources: dict[int, Source] = field(default_factory=dict)  # the latest row of each
    replans: list[Replan] = field(default_factory=list)


def read_stored(artifacts: list[Artifact], run_count: int) -> Stored:
    """Step 1: the goal run's artifacts (oldest first) in their typed form."""
    stored = Stored()
    for artifact in artifacts:
        if artifact.key == PLAN_KEY:
            stored.plan = parse_rows(artifact.data, PlanRow)  # the latest revision wins
        elif artifact.key == OUTCOME_KEY:
            rows = parse_rows(artifact.data, OutcomeRow)
            # A retried goal run's earlier attempt left its own outcome and result: once the
            # new attempt runs (run_count grows), they no longer describe it.
            current = all(row.attempt == run_count for row in rows)
            stored.outcome = {row.id: row for row in rows} if current else {}
            stored.result = None
        elif artifact.key == RESULT_KEY and stored.outcome:
            stored.result = str(artifact.data)
        elif artifact.key == REPLANS_KEY:
            stored.replans = parse_rows(artifact.data, Replan)  # the latest table wins
        elif artifact.key == BUDGET_KEY:
            stored.halted = artifact.description
        elif (artifact.description or "").startswith(RECORD_PREFIX):
            stored.records.extend(parse_rows(artifact.data, AttemptRecord))
        elif (artifact.description or "").startswith(SOURCES_PREFIX):
            stored.sources.update((s.id, s) for s in parse_rows(artifact.data, Source))
    return stored


@dataclass
class Spending:
    """Step 2: the attempt records folded: each step's latest attempt, what was learned (in
    time order) and what it all cost."""

    latest: dict[str, AttemptRecord] = field(default_factory=dict)
    learned: list[Learned] = field(default_factory=list)
    total: Usage = field(default_factory=Usage)
    by_tier: dict[str, Usage] = field(default_factory=dict)
    providers: set[str] = field(default_factory=set)
    citations: dict[str, CitationReport] = field(default_factory=dict)  # each step's latest


def fold_records(records: list[AttemptRecord]) -> Spending:
    spending = Spending()
    for record in records:
        spending.latest[record.step] = record
        spending.total = spending.total + record.usage
        tier = record.tier or "unknown"
        spending.by_tier[tier] = spending.by_tier.get(tier, Usage()) + record.usage
        spending.providers.add(record.provider)
        if record.citations is not None:
            spending.citations[record.step] = record.citations
        if record.status == "ok" and record.learned and record.step != "planner":
            spending.learned.append(Learned(subtask=record.step, text=record.learned, at=record.at))
    spending.learned.sort(key=lambda item: item.at)
    return spending


@dataclass(frozen=True)
class Merged:
    state: str
    message: str | None
    started_at: datetime | None
    ended_at: datetime | None


def merge_state(run: TaskRun | None, final: OutcomeRow | None, seen: SeenState | None) -> Merged:
    """Step 3: one subtask's state from three sources, newest first: an event announced
    after the database's state, else the database's; the flow's outcome row once the goal
    run has finished with it (task run states reach the database a moment late)."""
    run_state = run.state if run is not None else None
    merged = Merged(
        state=run_state.name if run_state is not None and run_state.name else "Pending",
        message=run_state.message if run_state is not None else None,
        started_at=run.start_time if run is not None else None,
        ended_at=run.end_time if run is not None else None,
    )
    if seen is not None and (run_state is None or run_state.timestamp < seen.at):
        started, ended = merged.started_at, merged.ended_at
        if bucket_of(seen.name) == "running":
            started = started or seen.at
        elif has_ended(seen.name):
            ended = seen.at
        merged = Merged(seen.name, seen.message, started, ended)
    if final is not None and not has_ended(merged.state):
        merged = Merged(final.state, final.message, merged.started_at, final.at)
    if final is not None and merged.started_at is None:  # the server has not recorded it yet
        merged = Merged(merged.state, merged.message, final.started_at, merged.ended_at)
    return merged


def subtask_progress(
    row: PlanRow, merged: Merged, record: AttemptRecord | None, settings: Settings
) -> SubtaskProgress:
    error = None
    if bucket_of(merged.state) in ("failed", "skipped"):
        error = _PREFECT_PREFIX.sub("", merged.message or "") or (record.error if record else None)
    spec = settings.tiers.get(row.tier)
    return SubtaskProgress(
        id=row.id,
        title=row.title,
        kind=row.kind,
        tier=row.tier,
        model=(record.model if record else None) or (spec.model if spec else None),
        state=merged.state,
        depends_on=row.depends_on,
        started_at=merged.started_at,
        ended_at=merged.ended_at,
        learned=record.learned if record is not None and record.status == "ok" else None,
        error=error,
        revision=row.revision,
        replaced_by=row.replaced_by,
    )


async def read_goal_run(client: PrefectClient, flow_run_id: UUID | str) -> FlowRun:
    try:
        run_id = UUID(str(flow_run_id))
    except ValueError:
        raise UnknownGoalRun(f"{flow_run_id!r} is not a goal run id (a UUID)") from None
    try:
        return await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise UnknownGoalRun(f"no goal run has id {run_id}") from None


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
    flow_run = await read_goal_run(client, flow_run_id)
    runs, stored_artifacts = await asyncio.gather(
        prefect_reads.task_runs(client, flow_run.id),
        prefect_reads.artifacts(client, flow_run.id),
    )
    stored = read_stored(stored_artifacts, flow_run.run_count)
    spending = fold_records(stored.records)
    latest_runs = prefect_reads.subtask_runs(runs)
    seen = seen or {}
    subtasks = [
        subtask_progress(
            row,
            merge_state(latest_runs.get(row.id), stored.outcome.get(row.id), seen.get(row.id)),
            spending.latest.get(row.id),
            settings,
        )
        for row in stored.plan
    ]
    limits = flow_run.parameters.get("budget")
    goal_state = flow_run.state
    paused = goal_state is not None and goal_state.name == "Paused"
    return ProgressDocument(
        id=str(flow_run.id),
        goal=str(flow_run.parameters.get("goal", "")),
        state=goal_state.name if goal_state is not None else "Pending",
        message=goal_state.message if goal_state is not None else None,
        created_at=flow_run.created,
        updated_at=flow_run.updated,
        prefect_url=prefect_run_url(flow_run.id),
        provider=(
            next(iter(spending.providers))
            if len(spending.providers) == 1
            else settings.resolved_provider
        ),
        subtasks=subtasks,
        counts=count_states(subtasks),
        learned=spending.learned,
        result=stored.result,
        sources=[stored.sources[n] for n in sorted(stored.sources)],
        citations=CitationReport.merged(spending.citations.values()),
        plan_revision=max((r.revision for r in stored.replans if r.ran), default=0),
        replans=stored.replans,
        usage=UsageReport(**spending.total.model_dump(), by_tier=spending.by_tier),
        budget=(
            BudgetReport(**limits, exceeded=stored.halted) if isinstance(limits, dict) else None
        ),
        tiers=tier_reports(subtasks, settings),
        forecast=await forecast_plan(client, subtasks, settings) if paused else None,
    )


def tier_reports(subtasks: list[SubtaskProgress], settings: Settings) -> dict[str, TierReport]:
    """The plan's tiers, in plan order, with their models and concurrency limits."""
    limits = settings.limits
    return {
        tier: TierReport(
            model=spec.model if (spec := settings.tiers.get(tier)) else None,
            limit=limits.get(tier),
        )
        for tier in dict.fromkeys(s.tier for s in subtasks)
    }


async def read_plan(client: PrefectClient, flow_run_id: UUID) -> dict[str, object]:
    """The goal run's current plan in the plan file's format (what approve accepts edited)."""
    flow_run = await read_goal_run(client, flow_run_id)
    stored = read_stored(await prefect_reads.artifacts(client, flow_run.id), flow_run.run_count)
    if not stored.plan:
        raise UnknownGoalRun(f"goal run {flow_run_id} has no plan yet")
    return {
        "goal": str(flow_run.parameters.get("goal", "")),
        "subtasks": [row.as_plan_subtask() for row in stored.plan],
    }


class SubtaskDetail(BaseModel):
    """One subtask's full output (the progress document carries only its learned line)."""

    id: str
    state: str
    learned: str | None = None
    output: str | None = None
    error: str | None = None


async def read_subtask(client: PrefectClient, flow_run_id: UUID, subtask_id: str) -> SubtaskDetail:
    """The subtask's output, from its task run's persisted result (on the runner's disk)."""
    runs = await prefect_reads.task_runs(client, flow_run_id)
    run = prefect_reads.subtask_runs(runs).get(subtask_id)
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


class SourceDetail(Source):
    """One source of a goal run with its text as it was read (what its citations were
    checked against)."""

    text: str = ""
    screenshot: bool = False  # a screenshot of the page is kept beside it


async def read_source(
    client: PrefectClient, flow_run_id: UUID, source_id: int, home: Path
) -> SourceDetail:
    flow_run = await read_goal_run(client, flow_run_id)
    stored = read_stored(await prefect_reads.artifacts(client, flow_run.id), flow_run.run_count)
    source = stored.sources.get(source_id)
    if source is None:
        raise UnknownGoalRun(f"goal run {flow_run_id} has no source {source_id}")
    texts = [
        str(a.data)
        for a in await prefect_reads.snapshots(client, flow_run.id)
        if snapshot_id(a.description) == source_id
    ]
    return SourceDetail(
        **source.model_dump(),
        text="\n\n---\n\n".join(dict.fromkeys(texts)),
        screenshot=screenshot_path(home, flow_run.id, source_id).exists(),
    )
