"""Mission Control against a real Anthropic-compatible server: llama.cpp's llama-server with
SmolLM2-135M (scripts/real-model). The model is tiny and its answers are nonsense, so every
assertion is on behaviour (shapes, states, usage, errors, timing), never on content."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cli.main import main
from core.artifacts import AttemptRecord
from core.endpoint_check import PIXEL, PROBE_TOOL
from core.errors import ProviderError
from core.gateway import call_model, get_provider, route
from core.gateway.types import ModelRequest
from core.pricing import Usage
from core.settings import get_settings
from core.stop import NEVER, GoalStopped, Stop
from flows.compound_goal import compound_goal
from tasks.planner import plan_tool, system_prompt
from tests.conftest import reset_settings
from tests.flows.test_compound_goal import progress

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

REPORT = PROBE_TOOL  # output and learned, both strings


class RecordingLedger:
    """A goal run's ledger in miniature: what was charged and recorded, nothing limited."""

    stop = NEVER

    def __init__(self) -> None:
        self.charged = Usage()
        self.records: list[AttemptRecord] = []

    def check(self) -> None:
        return None

    def charge(self, usage: Usage) -> None:
        self.charged = self.charged + usage

    def record(self, attempt: AttemptRecord) -> None:
        self.records.append(attempt)


def test_doctor_finds_tools_and_json_schema_and_no_image_input(
    real_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[2:] for line in out.splitlines()[3:8]}
    assert code == 1, out  # the vision tier cannot take images: SmolLM2 is text-only
    assert rows["vision"][5:] == ["no", "no"], out
    assert "image input is not supported" in out
    for tier in ("fast", "structured", "deep", "writer"):
        reach, name, tools, _forced, json_schema, _image, usable = rows[tier]
        assert (reach, name, tools, json_schema, usable) == ("ok", "ok", "ok", "ok", "ok"), out


def test_a_planner_call_answers_in_the_plan_tools_shape(real_model: str) -> None:
    settings = get_settings()
    tool = plan_tool(settings)
    request = ModelRequest(
        system=system_prompt(settings),
        prompt="<goal>\nCompare two sorting algorithms.\n</goal>\n\nPlan this goal.",
        tool=tool,
        label="planner",
    )
    ledger = RecordingLedger()
    reply = call_model("planner", settings.planner_tier, request, ledger)
    subtasks = reply.data["subtasks"]
    assert isinstance(subtasks, list)
    item = tool.schema["properties"]["subtasks"]["items"]
    for subtask in subtasks:
        assert set(item["required"]) <= set(subtask)
        assert subtask["kind"] in item["properties"]["kind"]["enum"]
        assert subtask["tier"] in item["properties"]["tier"]["enum"]
    assert [r.status for r in ledger.records] == ["ok"]
    assert ledger.charged.output_tokens > 0 and ledger.charged.cost_usd is None  # unpriced


def sub(id: str, *deps: str, tier: str = "fast", kind: str = "extract") -> dict[str, Any]:
    return {
        "id": id,
        "title": f"Say something about {id}",
        "instruction": f"Write one sentence about the word {id}.",
        "kind": kind,
        "tier": tier,
        "depends_on": list(deps),
    }


@pytest.mark.usefixtures("prefect_server")
def test_a_ready_plan_with_a_dependency_runs_to_completion_with_usage_recorded(
    real_model: str,
) -> None:
    plan = [
        sub("apple"),
        sub("pear"),
        sub("fruit", "apple", "pear", tier="deep", kind="synthesize"),
    ]
    state = compound_goal("say things about fruit", plan={"subtasks": plan}, return_state=True)
    doc = progress(state.state_details.flow_run_id)
    assert state.is_completed(), state.message
    assert doc.counts.completed == doc.counts.total == 3
    by_id = {s.id: s for s in doc.subtasks}
    for dep in ("apple", "pear"):
        assert by_id["fruit"].started_at >= by_id[dep].ended_at  # type: ignore[operator]
    assert doc.result
    assert doc.usage.input_tokens > 0 and doc.usage.output_tokens > 0
    assert doc.usage.cost_usd is None  # an unpriced model: unknown, never $0
    assert set(doc.usage.by_tier) == {"fast", "deep"}


def test_an_image_sent_to_a_text_only_model_fails_once_with_the_servers_message(
    real_model: str,
) -> None:
    ledger = RecordingLedger()
    request = ModelRequest(
        system="Describe the image.", prompt="What is in it?", tool=REPORT, images=(PIXEL,)
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        call_model("look", "vision", request, ledger)
    assert "image input is not supported" in info.value.message
    assert not info.value.transient  # so no task retry sends it again either
    assert [r.status for r in ledger.records] == ["error"]
    assert time.monotonic() - started < 5  # no SDK retries with their back-off


def test_a_stop_aborts_a_call_in_flight_at_once(
    real_model: str, settings_env: pytest.MonkeyPatch
) -> None:
    # A forced tool call on llama-server: the tiny model writes prose up to max_tokens, a
    # long reply to abort.
    settings_env.setenv("MISSION_STRUCTURED", "tools")
    reset_settings()
    spec = route("writer")
    spec = type(spec)(**{**spec.__dict__, "max_tokens": 4096})
    stop = Stop()
    request = ModelRequest(system="Write at length.", prompt="Tell a long story.", tool=REPORT)
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            get_provider().complete(spec, request, stop)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive(), "the reply came before the stop: nothing to abort"
    stopped_at = time.monotonic()
    stop.set("cancelled by the test")
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert time.monotonic() - stopped_at < 2
    assert isinstance(outcome[0], GoalStopped)
