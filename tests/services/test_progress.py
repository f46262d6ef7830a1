"""The progress document's steps, each on its own: stored artifacts, folded records, merged
states (no Prefect server: these are plain functions over Prefect's own client objects)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from prefect.client.schemas.objects import Artifact, State, StateType, TaskRun

from core.artifacts import AttemptRecord, OutcomeRow, table_data
from services.progress import SeenState, fold_records, merge_state, read_stored

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def table(key: str | None, rows: list[dict[str, object]], description: str = "") -> Artifact:
    return Artifact(key=key, type="table", data=json.dumps(rows), description=description)


def plan_row(id: str, *deps: str) -> dict[str, object]:
    return {"id": id, "title": id, "kind": "extract", "tier": "fast", "depends_on": list(deps)}


def record(step: str, at: int, **kw: object) -> AttemptRecord:
    fields = {"provider": "simulated", "tier": "fast", "status": "ok", **kw}
    return AttemptRecord(step=step, at=T0 + timedelta(seconds=at), **fields)  # type: ignore[arg-type]


def test_the_latest_plan_revision_wins_and_records_are_gathered() -> None:
    rows = table_data([record("a", 1, learned="x")])
    stored = read_stored(
        [
            table("goal-plan", [plan_row("a")]),
            table(None, rows, description="mission record: a (ok)"),
            table("goal-plan", [plan_row("a"), plan_row("b", "a")]),
        ],
        run_count=1,
    )
    assert [row.id for row in stored.plan] == ["a", "b"]
    assert [r.step for r in stored.records] == ["a"]


def test_an_earlier_attempts_outcome_and_result_do_not_describe_a_retry() -> None:
    outcome = table_data([OutcomeRow(id="a", state="Failed", at=T0, attempt=1)])
    artifacts = [
        table("goal-outcome", outcome),
        Artifact(key="goal-result", type="markdown", data="partial answer"),
    ]
    first = read_stored(artifacts, run_count=1)
    assert (first.outcome["a"].state, first.result) == ("Failed", "partial answer")
    retried = read_stored(artifacts, run_count=2)
    assert (retried.outcome, retried.result) == ({}, None)


def test_records_fold_into_learned_lines_in_time_order_and_usage_per_tier() -> None:
    spending = fold_records(
        [
            record("b", 5, learned="second", output_tokens=10, cost_usd=0.5),
            record("planner", 0, learned="not a finding", tier="deep", input_tokens=3),
            record("a", 2, learned="first", cache_read_input_tokens=90),
            record("a", 1, status="error", error="boom"),
        ]
    )
    assert [item.text for item in spending.learned] == ["first", "second"]
    assert spending.latest["a"].status == "error"  # the last record written wins
    assert spending.total.cache_read_input_tokens == 90 and spending.total.input_tokens == 3
    assert spending.by_tier["deep"].input_tokens == 3 and spending.by_tier["fast"].cost_usd == 0.5


def run_in(state_type: StateType, name: str, at: datetime) -> TaskRun:
    state = State(type=state_type, name=name, timestamp=at)
    return TaskRun(name="a: A", task_key="k", dynamic_key="0", state=state, start_time=T0)


def test_an_event_newer_than_the_database_is_shown_and_an_older_one_is_not() -> None:
    run = run_in(StateType.RUNNING, "Running", T0 + timedelta(seconds=1))
    newer = SeenState("Completed", None, T0 + timedelta(seconds=2))
    older = SeenState("Pending", None, T0)
    merged = merge_state(run, None, newer)
    assert (merged.state, merged.ended_at) == ("Completed", newer.at)
    assert merge_state(run, None, older).state == "Running"


def test_the_flows_outcome_settles_a_state_the_database_has_not_caught_up_with() -> None:
    run = run_in(StateType.RUNNING, "Running", T0)
    final = OutcomeRow(id="a", state="Completed", at=T0 + timedelta(seconds=3))
    merged = merge_state(run, final, None)
    assert (merged.state, merged.started_at, merged.ended_at) == ("Completed", T0, final.at)
    done = run_in(StateType.FAILED, "Failed", T0)
    assert merge_state(done, final, None).state == "Failed"  # an ended state is kept
    assert merge_state(None, None, None).state == "Pending"  # not started yet


def test_an_unpriced_models_cost_is_unknown_in_the_total_and_its_tier_never_zero() -> None:
    spending = fold_records(
        [
            record("a", 1, output_tokens=10, cost_usd=0.25),
            record("b", 2, tier="deep", input_tokens=7, cost_usd=None),
        ]
    )
    assert spending.total.cost_usd is None and spending.total.input_tokens == 7
    assert spending.by_tier["deep"].cost_usd is None
    assert spending.by_tier["fast"].cost_usd == 0.25  # a priced tier stays known
