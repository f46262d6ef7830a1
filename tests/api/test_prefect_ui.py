"""What the Prefect UI shows of goal runs, on a stack of its own that ships run logs to its
own Prefect server: each subtask's attempts in its task run's log and the plan and outcome in
the flow run's log; a recurring goal's `notify` webhook, an automation there."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Log
from prefect.settings import PREFECT_API_URL, temporary_settings

from core.local_server import PrefectServer
from core.plan import PlanLimits
from core.web_guard import Allowlist
from services import schedules
from tests.api.conftest import STACK_ENV, Stack, follow, plan
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import free_port, start_stack, stop_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`mission up` on a Prefect server of its own, shipping run logs (the session's stacks
    ship none), with loopback allowed as a notify webhook."""
    server = PrefectServer(home=tmp_path_factory.mktemp("ui-prefect"), port=free_port()).start()
    home: Path = tmp_path_factory.mktemp("ui-home")
    stack = start_stack(
        server.api_url,
        MISSION_HOME=str(home),
        # Prefect's default (the session's stacks turn it off); the console level stays
        # WARNING, as `mission up` sets it.
        PREFECT_LOGGING_TO_API_ENABLED="true",
        MISSION_NOTIFY_ALLOW="127.0.0.1",
        MISSION_MIN_SCHEDULE_S="5",
        **STACK_ENV,
    )
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield stack
    stop_stack(stack)
    server.stop()


async def _logs(flow_run_id: str) -> list[Log]:
    async with get_client() as client:
        return await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])),
            limit=200,
        )


def _logs_until(flow_run_id: str, line: str, within_s: float = 30) -> list[Log]:
    """The run's logs once a line with `line` has reached the server (logs are shipped in
    batches)."""
    deadline = time.monotonic() + within_s
    while True:
        logs = asyncio.run(_logs(flow_run_id))
        if any(line in entry.message for entry in logs):
            return logs
        assert time.monotonic() < deadline, f"no log line with {line!r}: {logs}"
        time.sleep(0.5)


def test_a_goal_runs_logs_tell_each_subtasks_model_tokens_learned_line_and_retry(
    logged_stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    # b's first reply is cut off: the attempt is rejected and Prefect retries the subtask.
    fake_anthropic.on("Subtask id: b", times=1, stop_reason="max_tokens")
    run_id = logged_stack.submit(goal="logs tell the story", plan=plan(("a", []), ("b", ["a"])))
    final = follow(logged_stack, run_id, "Completed")[-1]
    assert final["state"] == "Completed"

    logs = _logs_until(run_id, "outcome: Completed")
    flow_lines = [entry.message for entry in logs if entry.task_run_id is None]
    task_lines = [entry.message for entry in logs if entry.task_run_id is not None]
    assert any(line.startswith("plan: 2 subtasks") and "- b (extract, tier fast) after a" in line
               for line in flow_lines)  # fmt: skip
    assert any(line.startswith("outcome: Completed: 2 subtasks completed") for line in flow_lines)
    for subtask in final["subtasks"]:
        sid, model = subtask["id"], subtask["model"]
        assert model and any(
            line.startswith(f"{sid}: attempt ok on {model} (tier fast")
            and "100 input + 20 output tokens" in line
            and line.endswith(f"learned: {sid} learned something")
            for line in task_lines
        ), task_lines
    assert any(line.startswith("b: attempt rejected") and "error:" in line for line in task_lines)
    assert any("Retry 1/1 will start" in line for line in task_lines)  # Prefect's own line


class Receiver:
    """A webhook receiver on loopback: the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, object]]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


def test_a_recurring_goal_with_notify_posts_each_run_once_and_its_deletion_removes_it(
    logged_stack: Stack, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.on(
        "Write the final answer", tool_input={"output": "Rents rose 3 %.", "learned": "rose"}
    )
    receiver = Receiver()
    with logged_stack.client() as api:
        refused = api.post(
            "/schedules", json={"goal": "g", "interval_s": 3600, "notify": "http://10.1.2.3/h"}
        )
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("notify: 10.1.2.3 is a private address")

    spec = schedules.build_spec(
        "tell me when it ends",
        interval_s=3600,
        plan=plan(("rents", [])),
        max_goal_chars=10_000,
        limits=PlanLimits(tiers=frozenset({"fast"})),
        # Prefect's scheduler only creates runs that start after it looks: the first in 12 s.
        anchor=datetime.now(UTC) + timedelta(seconds=12),
        min_period_s=5,
        notify=receiver.url,
        notify_allow=Allowlist.parse("127.0.0.1"),
    )

    async def create() -> UUID:
        async with get_client() as client:
            made = await schedules.create_schedule(
                client, "compound-goal/compound-goal", spec, 50, logged_stack.url
            )
            return made.id

    sid = asyncio.run(create())
    with logged_stack.client() as api:
        listed = {item["id"]: item for item in api.get("/schedules").json()["items"]}
    assert listed[str(sid)]["notify"] == receiver.url

    deadline = time.monotonic() + 90
    while not receiver.received:
        assert time.monotonic() < deadline, "the webhook was never called"
        time.sleep(0.5)
    time.sleep(3)  # a second call for the same run would come within this
    assert len(receiver.received) == 1
    posted = receiver.received[0]
    run_id = str(posted["id"])
    assert posted["state"] == "Completed" and posted["goal"] == "tell me when it ends"
    assert posted["summary"] == "Rents rose 3 %." and posted["message"] == "1 subtasks completed"
    assert posted["url"] == f"{logged_stack.url}/tasks/{run_id}"
    assert str(posted["prefect_url"]).endswith(f"/runs/flow-run/{run_id}")

    async def automations() -> int:
        async with get_client() as client:
            return len(await client.read_automations_by_name(f"mission-notify-{sid}"))

    assert asyncio.run(automations()) == 1  # shown in the Prefect UI's automations
    with logged_stack.client() as api:
        assert api.delete(f"/schedules/{sid}").status_code == 204
    assert asyncio.run(automations()) == 0
