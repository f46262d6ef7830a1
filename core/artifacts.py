"""The artifact contract: what a goal run stores in Prefect, and the one typed form of it.

The flow and its tasks write these; the progress reader (services/progress.py) reads them
back. Every artifact belongs to the goal run's flow run:

| artifact | Prefect kind, key | rows / content |
|---|---|---|
| the plan (each revision) | table, `goal-plan` | `PlanRow` per subtask |
| what each subtask ended as | table, `goal-outcome` | `OutcomeRow` per subtask |
| the answer | markdown, `goal-result` | the joined answer |
| replanning points | table, `goal-replans` (all, each time) | `core.revision.Replan` each |
| a budget halt | markdown, `goal-budget` | why, in the description |
| model call attempts | table, no key, description `mission record: ...` | `AttemptRecord` each |
| sources found | table, no key, description `mission sources: ...` | `core.sources.Source` each |
| a source's text | `mission-snapshot`, no key, description `source <n>: <title>` | its text |

A finished subtask's `SubtaskResult` is its task run's persisted result. Snapshots have a
type of their own so that reading a goal run's document does not fetch them.
Rows that do not validate are skipped when read (and logged): one bad stored record must not
break a goal run's document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.citations import CitationReport
from core.plan import Plan, Subtask
from core.pricing import Usage

log = logging.getLogger(__name__)

PLAN_KEY = "goal-plan"
OUTCOME_KEY = "goal-outcome"
RESULT_KEY = "goal-result"
REPLANS_KEY = "goal-replans"
BUDGET_KEY = "goal-budget"
RECORD_PREFIX = "mission record: "
SOURCES_PREFIX = "mission sources: "
SNAPSHOT_TYPE = "mission-snapshot"
SNAPSHOT_CHARS = 20_000  # of a source's text kept (what browse keeps of a page, by default)


def screenshot_path(home: Path, flow_run_id: UUID, source_id: int) -> Path:
    """Where a goal run keeps a page source's screenshot, beside its results (MISSION_HOME):
    on the machine that ran it."""
    return home / "screenshots" / str(flow_run_id) / f"{source_id}.png"


def snapshot_description(source_id: int, title: str) -> str:
    return f"source {source_id}: {title}"[:500]


def snapshot_id(description: str | None) -> int | None:
    """The source id of a snapshot artifact, from its description."""
    head, sep, _ = (description or "").partition(":")
    number = head.removeprefix("source ")
    return int(number) if sep and number.isdigit() else None


class PlanRow(BaseModel):
    """One subtask of the plan, as a row of the `goal-plan` table."""

    id: str
    title: str
    instruction: str = ""
    kind: str
    tier: str
    temperature: float | None = None
    depends_on: list[str] = Field(default_factory=list)
    url: str | None = None
    revision: int = 0  # the plan revision that added it (0: the plan as first made)
    replaced_by: str | None = None  # the subtask that replaced it after it failed

    @field_validator("depends_on", mode="before")
    @classmethod
    def _older_rows_joined_them(cls, value: Any) -> Any:
        """Rows written before the contract was typed hold "a, b"."""
        if isinstance(value, str):
            return [d.strip() for d in value.split(",") if d.strip()]
        return value

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None

    @classmethod
    def of(cls, subtask: Subtask) -> PlanRow:
        return cls(**subtask.model_dump(mode="json"))

    def as_plan_subtask(self) -> dict[str, Any]:
        """The row in the plan file's format (what approve accepts edited)."""
        return self.model_dump(exclude_none=True, exclude={"revision", "replaced_by"})


def plan_rows(
    plan: Plan,
    revision_of: Mapping[str, int] | None = None,
    replaced: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The plan's rows; `revision_of` and `replaced` mark what revisions added and replaced."""
    rows = []
    for s in plan.subtasks:
        row = PlanRow.of(s)
        row.revision = (revision_of or {}).get(s.id, 0)
        row.replaced_by = (replaced or {}).get(s.id)
        rows.append(row.model_dump(mode="json"))
    return rows


class OutcomeRow(BaseModel):
    """How one subtask ended in one attempt of the goal run, as the flow saw it."""

    id: str
    state: str
    message: str = ""
    at: datetime | None = None
    attempt: int = 1
    started_at: datetime | None = None  # when its (latest) task run started


AttemptStatus = Literal["ok", "rejected", "error", "stopped", "skipped", "halted", "cancelled"]


class AttemptRecord(BaseModel):
    """One model call attempt (planner, subtask or join; failed ones included), or a subtask
    that never called (skipped, halted)."""

    step: str  # "planner", "join" or a subtask id
    provider: str
    tier: str
    status: AttemptStatus
    model: str | None = None
    learned: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = 0.0  # None: an unpriced model
    at: datetime
    citations: CitationReport | None = None  # what the checker found in this reply

    @property
    def usage(self) -> Usage:
        return Usage(**self.model_dump(include=set(Usage.model_fields)))


class SubtaskResult(BaseModel):
    """What a finished (or skipped) subtask hands to its dependents and to the join; its task
    run's persisted result."""

    id: str
    status: Literal["completed", "skipped"]
    output: str = ""
    learned: str = ""
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    reason: str | None = None
    sources: list[int] = Field(default_factory=list)  # the source ids it had, for dependents


def table_data(rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """Rows as a Prefect table artifact takes them."""
    return [row.model_dump(mode="json") for row in rows]


Row = TypeVar("Row", bound=BaseModel)


def parse_rows(data: Any, model: type[Row]) -> list[Row]:
    """The rows of a stored table artifact that validate as `model`; the others are logged
    and skipped."""
    try:
        rows = json.loads(data) if isinstance(data, str) else data
    except json.JSONDecodeError:
        log.warning("a stored %s table is not JSON; ignored", model.__name__)
        return []
    parsed: list[Row] = []
    for row in rows if isinstance(rows, list) else []:
        try:
            parsed.append(model.model_validate(row))
        except ValidationError as exc:
            log.warning("a stored %s row does not validate; skipped: %s", model.__name__, exc)
    return parsed
