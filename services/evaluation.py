"""Scoring for `mission eval`, by code: what a goal run's progress document says, measured.

Answer accuracy is the share of a goal's expected facts its result states; a decoy the result
states is counted apart. Only the answer is read: the flagged-citations note and the numbered
Sources list a result ends with are cut off first (a decoy page's title is not a claim).
Citation validity is the document's verified citations over all its citations. Speedup is the
wall time of the same plan run with every tier's concurrency 1 (subtasks of one tier call their
model one at a time) over its time run as planned; what routing saves is the cost of the same
plan with every tier on the deep model against the tiers as configured.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from core.citations import FLAG_MARK, CitationReport
from core.progress import ProgressDocument
from services.eval_suite import EvalGoal

Routing = Literal["configured", "deep"]
Schedule = Literal["as planned", "concurrency 1"]
SOURCES_HEADING = "## Sources"


class AnswerScore(BaseModel):
    found: list[str] = Field(description="names of the expected facts the answer states")
    missing: list[str] = Field(description="names of the expected facts it does not state")
    decoys: list[str] = Field(description="names of the decoys it states")

    @property
    def accuracy(self) -> float:
        """Expected facts stated, over expected facts (decoys stated are counted apart)."""
        return len(self.found) / ((len(self.found) + len(self.missing)) or 1)


class RunScore(BaseModel):
    """One goal run of the suite: how it ended and what its document scores."""

    routing: Routing
    schedule: Schedule
    goal_run_id: str | None = None
    state: str | None = None
    error: str | None = None  # why the run gave no document, or why it did not complete
    subtask_errors: list[str] = Field(default_factory=list)  # "<subtask>: <error>"
    wall_s: float
    subtasks_completed: int = 0
    subtasks_total: int = 0
    answer: AnswerScore | None = None
    result: str | None = None  # the run's result, as scored
    accuracy: float = 0.0  # 0 without an answer
    citations_total: int = 0
    citations_verified: int = 0
    citation_validity: float | None = None  # None: the run cited nothing
    cost_usd: float | None = None  # None: unpriced, or no document
    input_tokens: int = 0
    output_tokens: int = 0


class GoalScore(BaseModel):
    id: str
    goal: str
    plan_from: Literal["planner", "suite"]
    plan_s: float = 0.0
    plan_error: str | None = None
    subtasks: int = 0
    runs: list[RunScore] = Field(default_factory=list)

    def run(self, routing: Routing, schedule: Schedule) -> RunScore | None:
        return next((r for r in self.runs if (r.routing, r.schedule) == (routing, schedule)), None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def speedup(self) -> float | None:
        """Wall time with every tier's concurrency 1 over wall time as planned; None unless
        both runs completed."""
        parallel, serial = (
            self.run("configured", "as planned"),
            self.run("configured", "concurrency 1"),
        )
        if parallel is None or serial is None or parallel.error or serial.error:
            return None
        return speedup(serial.wall_s, parallel.wall_s)


def _plain(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def states(text: str, spellings: Iterable[str]) -> bool:
    """Whether `text` states one of `spellings`: as whole words (so `2011` is not found in
    `20110`, nor `6:30` in `06:30`), ignoring case and runs of whitespace."""
    plain = _plain(text)
    return any(
        re.search(rf"(?<!\w){re.escape(_plain(s))}(?!\w)", plain) is not None for s in spellings
    )


def answer_body(result: str) -> str:
    """The answer of a result, without the flagged-citations note and the Sources list that
    the join appends after it."""
    cuts = [i for i in (result.find(f"\n\n{FLAG_MARK}"), result.find(SOURCES_HEADING)) if i >= 0]
    return result[: min(cuts)] if cuts else result


def score_answer(result: str, goal: EvalGoal) -> AnswerScore:
    body = answer_body(result)
    return AnswerScore(
        found=[name for name, spellings in goal.expected.items() if states(body, spellings)],
        missing=[name for name, spellings in goal.expected.items() if not states(body, spellings)],
        decoys=[name for name, spellings in goal.decoys.items() if states(body, spellings)],
    )


def citation_validity(report: CitationReport) -> float | None:
    """Verified citations over all citations; None when there were none to check."""
    return report.verified / report.total if report.total else None


def speedup(concurrency_1_s: float, as_planned_s: float) -> float | None:
    """How many times faster the plan ran as planned than with every tier's concurrency 1."""
    return concurrency_1_s / as_planned_s if as_planned_s > 0 else None


def score_run(
    doc: ProgressDocument, goal: EvalGoal, routing: Routing, schedule: Schedule, wall_s: float
) -> RunScore:
    """What one goal run's document scores against its goal."""
    answer = score_answer(doc.result, goal) if doc.result else None
    return RunScore(
        routing=routing,
        schedule=schedule,
        goal_run_id=doc.id,
        state=doc.state,
        error=None if doc.state == "Completed" else (doc.message or doc.state),
        wall_s=wall_s,
        subtask_errors=[f"{s.id}: {s.error}" for s in doc.subtasks if s.error],
        subtasks_completed=doc.counts.completed,
        subtasks_total=doc.counts.total,
        answer=answer,
        result=doc.result,
        accuracy=answer.accuracy if answer is not None else 0.0,
        citations_total=doc.citations.total,
        citations_verified=doc.citations.verified,
        citation_validity=citation_validity(doc.citations),
        cost_usd=doc.usage.cost_usd,
        input_tokens=doc.usage.input_tokens,
        output_tokens=doc.usage.output_tokens,
    )


class ConfigurationScore(BaseModel):
    """The suite's runs under one routing and schedule, added up."""

    routing: Routing
    schedule: Schedule
    runs: int
    completed: int
    with_result: int  # runs whose document has a result (maybe only "the join failed")
    accuracy: float  # mean over the runs; a run without an answer scores 0
    decoys_stated: int
    decoys_total: int
    citations_total: int
    citations_verified: int
    citation_validity: float | None
    cost_usd: float | None  # None when a run's model is unpriced
    wall_s: float


def score_configuration(
    goals: list[GoalScore], suite: dict[str, EvalGoal], routing: Routing, schedule: Schedule
) -> ConfigurationScore | None:
    pairs = [(g, r) for g in goals if (r := g.run(routing, schedule)) is not None]
    if not pairs:
        return None
    runs = [r for _, r in pairs]
    with_document = [r for r in runs if r.goal_run_id is not None]
    costs = [r.cost_usd for r in with_document]
    report = CitationReport(
        total=sum(r.citations_total for r in runs),
        verified=sum(r.citations_verified for r in runs),
    )
    return ConfigurationScore(
        routing=routing,
        schedule=schedule,
        runs=len(runs),
        completed=sum(r.error is None for r in runs),
        with_result=sum(r.answer is not None for r in runs),
        accuracy=sum(r.accuracy for r in runs) / len(runs),
        decoys_stated=sum(len(r.answer.decoys) for r in runs if r.answer is not None),
        decoys_total=sum(len(suite[g.id].decoys) for g, _ in pairs),
        citations_total=report.total,
        citations_verified=report.verified,
        citation_validity=citation_validity(report),
        cost_usd=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        wall_s=sum(r.wall_s for r in runs),
    )


def suite_speedup(goals: list[GoalScore]) -> float | None:
    """The suite's time with concurrency 1 over its time as planned, over the goals
    whose both runs completed."""
    both = [
        (serial.wall_s, parallel.wall_s)
        for g in goals
        if g.speedup is not None
        and (serial := g.run("configured", "concurrency 1")) is not None
        and (parallel := g.run("configured", "as planned")) is not None
    ]
    return speedup(sum(s for s, _ in both), sum(p for _, p in both)) if both else None


def routing_saves(
    configured: ConfigurationScore | None, deep: ConfigurationScore | None
) -> float | None:
    """The share of the all-deep cost that routing as configured does not spend."""
    if configured is None or deep is None or configured.cost_usd is None or not deep.cost_usd:
        return None
    return 1 - configured.cost_usd / deep.cost_usd


class Summary(BaseModel):
    """The suite added up: per configuration, the speedup, and what routing saves."""

    configurations: list[ConfigurationScore]
    speedup: float | None
    routing_saves: float | None


class EvalResult(BaseModel):
    """What `mission eval --json` prints."""

    label: str
    provider: str
    endpoint: str | None
    models: dict[str, str]  # tier -> model, as configured
    deep_model: str
    plan_from: Literal["planner", "suite"]
    started_at: datetime
    command: str
    goals: list[GoalScore]
    summary: Summary


CONFIGURATIONS: tuple[tuple[Routing, Schedule], ...] = (
    ("configured", "as planned"),
    ("configured", "concurrency 1"),
    ("deep", "as planned"),
)


def summarise(goals: list[GoalScore], suite: list[EvalGoal]) -> Summary:
    by_id = {g.id: g for g in suite}
    scored = [score_configuration(goals, by_id, *c) for c in CONFIGURATIONS]
    return Summary(
        configurations=[c for c in scored if c is not None],
        speedup=suite_speedup(goals),
        routing_saves=routing_saves(scored[0], scored[2]),
    )
