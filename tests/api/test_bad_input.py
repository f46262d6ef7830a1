"""Bad input of every kind gets a clear 4xx, and no goal run is created for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.main import create_app
from core.goal_run import FLOW_NAME
from core.settings import Settings
from tests.api.conftest import TOKEN, Stack, plan
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.slow
JSON = {"content-type": "application/json"}


def _goal_runs() -> int:
    with get_client(sync_client=True) as client:
        return client.count_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])))


def _plan_with(**fields: Any) -> dict[str, Any]:
    ready = plan(("a", []))
    ready["subtasks"][0].update(fields)
    return ready


NESTED_ARRAYS = b'{"goal": "x", "plan": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NESTED_OBJECTS = b'{"goal": "x", "plan": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"}"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (json.dumps({"goal": "hello\u0000world"}).encode(), 422,
         "the goal contains a control character (U+0000) at character 6"),
        (json.dumps({"goal": "red \u001b[31m alert"}).encode(), 422,
         "a control character (U+001B)"),
        (b'{"goal": "half a pair \\ud800"}', 422, "an unpaired surrogate (U+D800)"),
        (json.dumps({"goal": "g", "plan": _plan_with(instruction="do\u0007it")}).encode(), 422,
         "subtask 'a': the instruction contains a control character (U+0007)"),
        (b'{"goal": "\xff\xfe not utf-8"}', 400, "not valid UTF-8 or nests too deeply"),
        (NESTED_ARRAYS, 400, "not valid UTF-8 or nests too deeply"),
        (NESTED_OBJECTS, 400, "not valid UTF-8 or nests too deeply"),
        (b'{"goal": "cut off', 422, "the body is not valid JSON"),
        (b"goal=plain+form", 422, "the body is not valid JSON (Expecting value at character 1)"),
        (b"[1, 2, 3]", 422, "Input should be a valid dictionary"),
        (b'{"goal": "' + b"x" * 10_000_000 + b'"}', 413, "larger than 524,288 bytes"),
    ],
    ids=["NUL", "escape", "unpaired surrogate", "bell in a plan", "invalid UTF-8",
         "nested arrays", "nested objects", "truncated JSON", "form body", "array body",
         "10 MB"],
)  # fmt: skip
def test_bad_bodies_get_a_clear_4xx_and_create_no_goal_run(
    stack: Stack, fake_anthropic: FakeAnthropic, body: bytes, status: int, says: str
) -> None:
    before = _goal_runs()
    with stack.client() as client:
        response = client.post("/task/compound", content=body, headers=JSON)
        schedule = client.post("/schedules", content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert schedule.status_code in (400, 413, 422), schedule.text  # recurring goals alike
    assert _goal_runs() == before
    assert fake_anthropic.calls == []


@pytest.fixture(scope="module")
def capped_app(prefect_server: str) -> Iterator[TestClient]:
    """The API limited to one active goal run, so even a valid body starts nothing."""
    settings_ = Settings(
        password=SecretStr("unused-password"), api_tokens=SecretStr(TOKEN), max_active_runs=1
    )
    with TestClient(create_app(settings_), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "goal": st.text(max_size=60) | JSON_VALUES,
        "plan": JSON_VALUES | st.builds(lambda extra: {"subtasks": [extra]}, JSON_VALUES),
        "approve": JSON_VALUES,
        "budget": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)


def test_any_body_gets_a_readable_answer_and_never_a_run_past_the_cap(
    capped_app: TestClient, one_active_run: None, fake_anthropic: FakeAnthropic
) -> None:
    before = _goal_runs()

    @given(body=BODIES)
    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(body: dict[str, Any]) -> None:
        response = capped_app.post("/task/compound", json=body)
        # 422 for anything invalid (said in words); 429 for a valid one: the cap is reached.
        assert response.status_code in (422, 429), (body, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "Traceback" not in detail

    check()
    assert _goal_runs() == before
    assert fake_anthropic.calls == []
