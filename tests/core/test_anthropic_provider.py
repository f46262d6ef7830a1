"""The Anthropic adapter, exercised through the real SDK against the fake Messages server."""

from __future__ import annotations

import pytest

from core.errors import ModelError, ProviderError
from core.gateway import ModelRequest, Tool, get_provider, route
from tests.fakes.anthropic_server import FakeAnthropic

TOOL = Tool(name="report_result", description="report", schema={"type": "object"})


def ask(prompt: str = "Subtask id: probe") -> dict[str, object]:
    request = ModelRequest(
        system="fixed system prompt", prompt=prompt, tool=TOOL, cache_system=True
    )
    reply = get_provider().complete(route("fast"), request)
    return {"data": reply.data, "usage": reply.usage, "model": reply.model}


def test_a_forced_tool_reply_comes_back_with_usage_priced(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("probe", tool_input={"output": "o", "learned": "l"}, usage=(1000, 200))
    reply = ask()
    assert reply["data"] == {"output": "o", "learned": "l"}
    usage = reply["usage"]
    assert (usage.input_tokens, usage.output_tokens) == (1000, 200)  # type: ignore[attr-defined]
    # haiku family: $1 in / $5 out per million tokens
    assert usage.cost_usd == pytest.approx((1000 * 1 + 200 * 5) / 1e6)  # type: ignore[attr-defined]
    body = fake_anthropic.calls[0].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tool_choice"] == {"type": "tool", "name": "report_result"}
    assert body["model"] == route("fast").model


def test_rate_limits_are_retried_after_the_servers_retry_after(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("probe", times=2, status=429, retry_after=0.05)
    assert ask()["data"]
    assert [c.status for c in fake_anthropic.calls] == [429, 429, 200]


@pytest.mark.parametrize("status", [529, 500])
def test_overload_and_server_errors_end_transient_after_the_sdk_retries(
    fake_anthropic: FakeAnthropic, status: int
) -> None:
    fake_anthropic.on("probe", status=status, retry_after=0.01)
    with pytest.raises(ProviderError) as info:
        ask()
    assert info.value.transient
    assert len(fake_anthropic.calls) == 3  # MISSION_SDK_MAX_RETRIES=2 -> three requests


def test_a_bad_request_is_not_retried(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("probe", status=400)
    with pytest.raises(ProviderError) as info:
        ask()
    assert not info.value.transient
    assert "refused the request (400)" in info.value.message
    assert len(fake_anthropic.calls) == 1


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ({"stop_reason": "max_tokens"}, "ran out of tokens"),
        ({"stop_reason": "refusal"}, "refused to answer"),
        ({"stop_reason": "end_turn"}, "did not answer with the report_result tool"),
    ],
)
def test_truncated_refused_and_toolless_replies_are_model_errors_that_keep_their_cost(
    fake_anthropic: FakeAnthropic, behaviour: dict[str, str], message: str
) -> None:
    fake_anthropic.on("probe", usage=(50, 4096), **behaviour)
    with pytest.raises(ModelError) as info:
        ask()
    assert message in info.value.message
    assert info.value.usage is not None and info.value.usage["output_tokens"] == 4096


def test_a_reply_slower_than_the_timeout_is_a_transient_failure(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_MODEL_TIMEOUT_S", "0.3")
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    fake_anthropic.on("probe", delay=1.0)
    with pytest.raises(ProviderError, match="did not answer in time") as info:
        ask()
    assert info.value.transient


def test_a_dropped_connection_is_a_transient_failure(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    fake_anthropic.on("probe", drop=True)
    with pytest.raises(ProviderError, match="cannot reach the model provider") as info:
        ask()
    assert info.value.transient


def test_temperature_reaches_a_compatible_endpoint_on_the_wire(
    fake_anthropic: FakeAnthropic,
) -> None:
    request = ModelRequest(system="s", prompt="Subtask id: probe", tool=TOOL)
    get_provider().complete(route("fast", temperature=0.05), request)
    assert fake_anthropic.calls[0].body["temperature"] == 0.05
