"""schemathesis against the OpenAPI schema: no 5xx, no response that breaks the schema.

The app runs in a real uvicorn server against the real Prefect server. It is limited to one
active goal run and one is held active, so a valid submission is answered 429 (documented)
instead of starting goal runs for random text; its deployment is one no runner serves, so
recurring goals the fuzzer creates never run; every other path runs for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.deployments.runner import RunnerDeployment
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.main import create_app
from core.goal_run import FLOW_NAME
from core.settings import Settings
from flows.compound_goal import compound_goal
from tests.stack import TOKEN, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_deployment(prefect_server: str) -> Iterator[str]:
    """A deployment of the goal flow that no runner serves: the recurring goals the fuzzer
    creates hang off it, and their runs (if any fall due) never start; all go at the end."""
    deployment = compound_goal.to_deployment(name="schema-fuzz")
    assert isinstance(deployment, RunnerDeployment)
    deployment_id = deployment.apply()
    yield f"{FLOW_NAME}/schema-fuzz"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        for run in runs:
            client.delete_flow_run(run.id)
        client.delete_deployment(deployment_id)


@pytest.fixture(scope="module")
def api_url(fuzz_deployment: str) -> Iterator[str]:
    app = create_app(
        Settings(
            password=SecretStr("unused-password"),
            api_tokens=SecretStr(TOKEN),
            max_active_runs=1,
            deployment=fuzz_deployment,
        )
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _fuzz(operation: Any, excluded: list[Any]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=excluded, timeout=30
        )

    check()


def test_api_answers_every_generated_request_within_its_schema(
    api_url: str,
    one_active_run: None,
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{api_url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # every route is fuzzed, not a subset
    # A valid submission is answered 429 here by design (see the module docstring); a
    # recurring goal's cron expression and timezone are checked beyond what a schema says,
    # so a schema-valid one may rightly get 422.
    semantic = {("POST", "/task/compound"), ("POST", "/schedules")}
    for operation in operations:
        where = (operation.method.upper(), operation.path)
        _fuzz(operation, [positive_data_acceptance] if where in semantic else [])
