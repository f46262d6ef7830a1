"""The artifact contract: rows round-trip, older rows still read, bad rows are skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.artifacts import AttemptRecord, OutcomeRow, PlanRow, parse_rows, plan_rows, table_data
from core.plan import PlanLimits, validate_plan

LIMITS = PlanLimits(tiers=frozenset({"fast", "vision"}))


def test_a_plan_round_trips_through_its_table_with_depends_on_as_a_list() -> None:
    plan = validate_plan(
        {
            "goal": "g",
            "subtasks": [
                {"id": "a", "title": "A", "instruction": "do a", "kind": "extract", "tier": "fast"},
                {"id": "b", "title": "B", "instruction": "see b", "kind": "browse",
                 "tier": "vision", "depends_on": ["a"], "url": "https://example.com/",
                 "temperature": 0.1},
            ],
        },
        LIMITS,
    )  # fmt: skip
    stored = json.dumps(plan_rows(plan))  # what Prefect keeps
    rows = parse_rows(stored, PlanRow)
    assert rows[1].depends_on == ["a"]
    again = validate_plan({"goal": "g", "subtasks": [r.as_plan_subtask() for r in rows]}, LIMITS)
    assert again == plan


def test_rows_written_before_the_contract_was_typed_still_read() -> None:
    old = [{"id": "c", "title": "C", "kind": "write", "tier": "fast", "temperature": None,
            "depends_on": "a, b", "url": ""}]  # fmt: skip
    (row,) = parse_rows(old, PlanRow)
    assert (row.depends_on, row.url, row.instruction) == (["a", "b"], None, "")


def test_one_bad_row_is_skipped_and_the_rest_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    good = AttemptRecord(step="a", provider="simulated", tier="fast", status="ok", at=at)
    rows = [*table_data([good]), {"step": "b", "status": "no such status"}, "not a row"]
    assert parse_rows(rows, AttemptRecord) == [good]
    assert "does not validate" in caplog.text
    assert parse_rows("{not json", OutcomeRow) == []
    assert parse_rows({"a": 1}, OutcomeRow) == []


def test_an_attempt_keeps_cache_tokens_apart_from_input_tokens() -> None:
    record = AttemptRecord(
        step="a", provider="anthropic", tier="fast", status="ok", input_tokens=10,
        cache_read_input_tokens=90, cache_creation_input_tokens=5, output_tokens=7,
        cost_usd=0.001, at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    usage = record.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens) == (10, 90)
    assert usage.total_tokens == 10 + 90 + 5 + 7
