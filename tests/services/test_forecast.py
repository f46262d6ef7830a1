"""Token counts learned from past goal runs' artifacts (services/forecast.py), no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from prefect.client.schemas.objects import Artifact

from core.artifacts import AttemptRecord, table_data

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def plan_row(id: str, kind: str) -> dict[str, object]:
    return {"id": id, "title": id, "kind": kind, "tier": "fast", "depends_on": []}


def records(*rows: tuple[str, int, int]) -> Artifact:
    data = [
        AttemptRecord(
            step=step,
            provider="simulated",
            tier="fast",
            status="ok",
            at=T0,
            input_tokens=i,
            output_tokens=o,
        )
        for step, i, o in rows
    ]
    return Artifact(
        type="table", data=json.dumps(table_data(data)), description="mission record: x"
    )


def test_each_subtasks_attempts_add_up_under_its_kind_in_its_own_goal_run() -> None:
    from services.forecast import subtask_tokens

    one, two = uuid4(), uuid4()
    artifacts = [
        Artifact(
            key="goal-plan",
            type="table",
            data=json.dumps([plan_row("a", "browse")]),
            flow_run_id=one,
        ),
        Artifact(
            key="goal-plan",
            type="table",
            data=json.dumps([plan_row("a", "write")]),
            flow_run_id=two,
        ),
        records(("a", 100, 10), ("a", 150, 20), ("planner", 999, 99), ("join", 300, 30)),
        records(("a", 7, 3)),
    ]
    artifacts[2].flow_run_id = one
    artifacts[3].flow_run_id = two
    assert subtask_tokens(artifacts) == {
        "browse": [(250, 30)],  # two attempts of one subtask
        "join": [(300, 30)],
        "write": [(7, 3)],  # the same id in another goal run is another subtask
    }  # the planner is not a subtask of the plan: left out
