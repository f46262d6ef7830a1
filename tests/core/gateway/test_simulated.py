"""The simulated provider: labelled, deterministic, with per-tier latency, and valid plans."""

from __future__ import annotations

import time

import pytest

from core.gateway import get_provider, route
from core.gateway.types import ModelRequest, Tool
from core.plan import validate_plan
from core.settings import forget_settings, get_settings
from tasks.planner import plan_tool

REPORT = Tool(name="report_result", description="r", schema={})


@pytest.fixture
def simulated(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("MISSION_PROVIDER", "simulated")
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "fast=150,default=0")


@pytest.mark.usefixtures("simulated")
def test_simulated_answers_are_labelled_and_deterministic() -> None:
    provider = get_provider()
    assert provider.name == "simulated"
    request = ModelRequest(
        system="s", prompt="Subtask id: x\n\nInstruction:\nCount.", tool=REPORT, label="x"
    )
    first = provider.complete(route("deep"), request)
    second = provider.complete(route("deep"), request)
    assert first == second
    assert "**Simulated answer**" in first.data["output"]
    assert "Instruction: Count." in first.data["output"]


@pytest.mark.usefixtures("simulated")
def test_simulated_latency_is_per_tier() -> None:
    provider = get_provider()
    request = ModelRequest(system="s", prompt="p", tool=REPORT)
    started = time.perf_counter()
    provider.complete(route("fast"), request)
    fast = time.perf_counter() - started
    started = time.perf_counter()
    provider.complete(route("deep"), request)
    deep = time.perf_counter() - started
    assert fast >= 0.15 > deep


@pytest.mark.usefixtures("simulated")
def test_the_simulated_planner_produces_a_valid_plan_sized_by_the_goal() -> None:
    settings = get_settings()
    request = ModelRequest(
        system="s",
        prompt="<goal>\nResearch the top 5 competitors\n</goal>",
        tool=plan_tool(settings),
    )
    reply = get_provider().complete(route("deep"), request)
    plan = validate_plan({**reply.data, "goal": "g"}, settings.plan_limits())
    assert len([s for s in plan.subtasks if s.id.startswith("research_")]) == 5


def test_without_an_api_key_the_provider_is_simulated(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("MISSION_PROVIDER")
    settings_env.delenv("ANTHROPIC_API_KEY")
    assert get_settings().resolved_provider == "simulated"
    settings_env.setenv("ANTHROPIC_API_KEY", "k")
    forget_settings()
    assert get_settings().resolved_provider == "anthropic"
