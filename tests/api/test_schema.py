"""schemathesis against the OpenAPI schema: no 5xx, no response that breaks the schema.

The app runs in a real uvicorn server against the real Prefect server. It is limited to one
active goal run and one is held active, so a valid submission is answered 429 (documented)
instead of starting goal runs for random text; every other path runs for real.
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
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.main import create_app
from core.settings import Settings
from tests.stack import TOKEN, free_port

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def api_url(prefect_server: str) -> Iterator[str]:
    app = create_app(
        Settings(
            password=SecretStr("unused-password"), api_tokens=SecretStr(TOKEN), max_active_runs=1
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
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # every route is fuzzed, not a subset
    for operation in operations:
        # A valid submission is answered 429 here by design (see the module docstring).
        _fuzz(operation, [positive_data_acceptance] if operation.path == "/task/compound" else [])
