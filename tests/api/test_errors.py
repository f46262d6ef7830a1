"""Bad input gets a clear error and loses nothing; the API never answers 500 to a user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelled, Scheduled
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.main import create_app
from core.settings import Settings
from flows.compound_goal import compound_goal
from tests.api.conftest import TOKEN, Stack, follow, plan
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_requests_without_a_valid_token_are_refused(stack: Stack) -> None:
    with stack.client(token=None) as client:
        missing = client.get("/task")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").status_code == 200  # the only open route
    with stack.client(token="wrong-token") as client:
        assert client.get("/task").status_code == 401
        assert client.get("/task", params={"token": TOKEN}).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"goal": ""}, 422, "goal is empty"),
        ({"goal": "x" * 5000}, 422, "characters"),
        ({}, 422, "goal: Field required"),
        ({"goal": "ok", "plan": {"subtasks": [{"id": "a"}]}}, 422, "subtask"),
        ({"goal": "ok", "plan": plan(("a", ["b"]), ("b", ["a"]))}, 422, "cycle"),
        ({"goal": "ok", "budget": {"max_tokens": -1}}, 422, "budget.max_tokens"),
        ({"goal": "ok", "surprise": 1}, 422, "surprise"),
    ],
)
def test_invalid_goals_get_422_and_no_model_call(
    stack: Stack, fake_anthropic: FakeAnthropic, body: dict, status: int, says: str
) -> None:
    with stack.client() as client:
        response = client.post("/task/compound", json=body)
    assert response.status_code == status
    assert says in response.json()["detail"]
    assert fake_anthropic.calls == []


def test_a_huge_body_gets_413_before_anything_reads_it(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    with stack.client() as client:
        response = client.post(
            "/task/compound",
            content=b'{"goal": "' + b"x" * 600_000 + b'"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert fake_anthropic.calls == []


def test_unknown_and_malformed_ids(stack: Stack) -> None:
    unknown = uuid.uuid4()
    with stack.client() as client:
        for path in ("progress", "events"):
            response = client.get(f"/task/{unknown}/{path}")
            assert response.status_code == 404, path
            assert str(unknown) in response.json()["detail"]
        for action in ("cancel", "approve", "reject"):
            assert client.post(f"/task/{unknown}/{action}").status_code == 404, action
        malformed = client.get("/task/not-a-uuid/progress")
        assert malformed.status_code == 422
        assert "flow_run_id" in malformed.json()["detail"]


def test_finished_runs_cannot_be_cancelled_or_approved(stack: Stack) -> None:
    run_id = stack.submit(goal="quick", plan=plan(("q", [])))
    assert follow(stack, run_id)[-1]["state"] == "Completed"
    with stack.client() as client:
        cancel = client.post(f"/task/{run_id}/cancel")
        approve = client.post(f"/task/{run_id}/approve")
    assert cancel.status_code == 409 and "already ended" in cancel.json()["detail"]
    assert approve.status_code == 409 and "not waiting for approval" in approve.json()["detail"]


def _app(**overrides: object) -> TestClient:
    settings = Settings(
        password=SecretStr("unused-password"), api_tokens=SecretStr(TOKEN), **overrides
    )
    return TestClient(create_app(settings), headers=AUTH)


def test_active_run_cap_gives_429_with_retry_after(one_active_run: None) -> None:
    with _app(max_active_runs=1) as client:
        response = client.post("/task/compound", json={"goal": "one too many"})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "limit is 1" in response.json()["detail"]


def test_prefect_unreachable_gives_503_with_a_clear_message() -> None:
    with (
        temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        _app() as client,
    ):
        response = client.get(f"/task/{uuid.uuid4()}/progress")
        listing = client.get("/task")
    assert response.status_code == 503
    assert "Prefect server at http://127.0.0.1:9/api is unreachable" in response.json()["detail"]
    assert listing.status_code == 503


def test_runs_scheduled_for_later_do_not_count_against_the_cap(
    stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    with get_client(sync_client=True) as prefect:
        later = prefect.create_flow_run(
            compound_goal,
            parameters={"goal": "tomorrow's goal"},
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1)),
        )
        try:
            with _app(max_active_runs=1) as client:
                response = client.post(
                    "/task/compound", json={"goal": "today's goal", "plan": plan(("now", []))}
                )
            assert response.status_code == 202, response.text
            assert follow(stack, response.json()["id"])[-1]["state"] == "Completed"
        finally:
            prefect.set_flow_run_state(later.id, Cancelled(), force=True)
