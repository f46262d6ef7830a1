"""The Anthropic adapter, exercised through the real SDK against the fake Messages server."""

from __future__ import annotations

import json

import pytest

from core.errors import ModelError, ProviderError
from core.gateway import get_provider, route
from core.gateway.anthropic_provider import TOKENS_PER_LISTED_OBJECT, fit_to_tokens
from core.gateway.types import ModelRequest, Tool
from core.pricing import FAMILY_PRICES
from core.settings import DEFAULT_TIERS, get_settings
from tasks.planner import plan_tool
from tests.conftest import reset_settings
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


# --- what a real server showed (issue 19) ---------------------------------------------------

LLAMA_NO_IMAGES = (
    "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)
PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"


def tiers_with(**changes: dict[str, object]) -> str:
    """MISSION_TIERS: the default tiers with some of their fields changed."""
    tiers = {name: spec.model_dump(exclude_none=True) for name, spec in DEFAULT_TIERS.items()}
    for name, fields in changes.items():
        tiers[name] |= fields
    return json.dumps(tiers)


def test_a_server_error_keeps_the_servers_own_message(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.on("probe", status=500, message="slot 3 crashed: out of KV cache")
    with pytest.raises(ProviderError) as info:
        ask()
    assert "answered 500: slot 3 crashed: out of KV cache" in info.value.message
    assert info.value.transient


def test_an_image_a_text_only_model_refuses_is_sent_once_and_not_retried(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.refuse_images = LLAMA_NO_IMAGES
    request = ModelRequest(system="s", prompt="Subtask id: probe", tool=TOOL, images=(PNG,))
    with pytest.raises(ProviderError) as info:
        get_provider().complete(route("vision"), request)
    assert not info.value.transient  # so the subtask's task retry does not send it again
    assert LLAMA_NO_IMAGES in info.value.message
    assert len(fake_anthropic.calls) == 1


@pytest.mark.parametrize(
    ("status", "message"),
    [(500, "model 'smollm9' not found"), (404, "no such model: smollm9"), (422, "bad input")],
)
def test_permanent_errors_are_not_retried_whatever_status_the_endpoint_uses(
    fake_anthropic: FakeAnthropic, status: int, message: str
) -> None:
    fake_anthropic.on("probe", status=status, message=message)
    with pytest.raises(ProviderError) as info:
        ask()
    assert not info.value.transient
    assert f"refused the request ({status}): {message}" in info.value.message
    assert len(fake_anthropic.calls) == 1


def test_an_unpriced_model_costs_unknown_never_zero(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_TIERS", tiers_with(fast={"model": "smollm2-135m"}))
    usage = ask()["usage"]
    assert usage.cost_usd is None  # type: ignore[attr-defined]
    assert usage.input_tokens == 100  # type: ignore[attr-defined]
    settings_env.setenv("MISSION_PRICES", '{"smollm2-135m": [0, 0]}')
    reset_settings()
    assert ask()["usage"].cost_usd == 0.0  # type: ignore[attr-defined]


def test_cache_reads_and_writes_are_counted_apart_and_the_cost_is_recomputable(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("probe", usage=(68, 40), cache=(200, 1451))
    usage = ask()["usage"]
    fields = (
        usage.input_tokens,  # type: ignore[attr-defined]
        usage.cache_creation_input_tokens,  # type: ignore[attr-defined]
        usage.cache_read_input_tokens,  # type: ignore[attr-defined]
        usage.output_tokens,  # type: ignore[attr-defined]
    )
    assert fields == (68, 200, 1451, 40)
    inp, out = FAMILY_PRICES["haiku"]
    recomputed = (68 * inp + 200 * inp * 1.25 + 1451 * inp * 0.1 + 40 * out) / 1e6
    assert usage.cost_usd == pytest.approx(recomputed, abs=1e-6)  # type: ignore[attr-defined]


def test_a_tiers_own_timeout_caps_its_requests(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_TIERS", tiers_with(fast={"timeout_s": 0.3}))
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    fake_anthropic.on("probe", delay=1.0)
    with pytest.raises(ProviderError, match=r"did not answer in time \(0.3 s\)"):
        ask()
    assert route("deep").timeout_s == 600  # the others keep MISSION_MODEL_TIMEOUT_S


def test_json_schema_mode_asks_chat_completions_for_the_tools_schema(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    fake_anthropic.on("probe", tool_input={"output": "o", "learned": "l"}, usage=(70, 9))
    request = ModelRequest(system="s", prompt="Subtask id: probe", tool=TOOL, images=(PNG,))
    reply = get_provider().complete(route("vision"), request)
    assert reply.data == {"output": "o", "learned": "l"}
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (70, 9)
    body = fake_anthropic.calls[0].body
    assert body["response_format"]["json_schema"]["schema"] == TOOL.schema
    assert "tools" not in body and "tool_choice" not in body
    image = body["messages"][1]["content"][0]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


def test_json_schema_mode_says_so_when_the_endpoint_cannot_do_it(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    fake_anthropic.chat_completions = False
    with pytest.raises(ProviderError, match="MISSION_STRUCTURED=json_schema cannot work") as info:
        ask()
    assert not info.value.transient


def test_json_schema_mode_reports_a_truncated_reply_with_its_cost(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    fake_anthropic.on("probe", stop_reason="max_tokens", usage=(10, 1024))
    with pytest.raises(ModelError, match="ran out of tokens") as info:
        ask()
    assert info.value.usage is not None and info.value.usage["output_tokens"] == 1024


def test_json_schema_mode_bounds_open_strings_so_a_reply_fits_the_tiers_tokens(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    """The endpoint compiles the schema into a grammar: a string with a maxLength must close,
    so a small model that repeats itself ends its reply instead of running out of tokens."""
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    settings_env.setenv("MISSION_TIERS", tiers_with(fast={"max_tokens": 300}))
    schema = {
        "type": "object",
        "properties": {
            "output": {"type": "string"},
            "learned": {"type": "string", "maxLength": 600},
            "missing": {"type": "string"},
            "count": {"type": "integer"},
        },
    }
    tool = Tool(name="report_result", description="report", schema=schema)
    fake_anthropic.on("probe", tool_input={"output": "o", "learned": "l"})
    get_provider().complete(route("fast"), ModelRequest(system="s", prompt="probe", tool=tool))
    sent = fake_anthropic.calls[0].body["response_format"]["json_schema"]["schema"]
    lengths = {k: v.get("maxLength") for k, v in sent["properties"].items()}
    # 300 tokens at 2 characters each, shared by the two open strings and the rest.
    assert lengths == {"output": 200, "learned": 600, "missing": 200, "count": None}
    assert schema["properties"]["output"] == {"type": "string"}  # the tool is left as it was


def test_json_schema_mode_bounds_a_list_of_objects_and_their_strings_to_the_tokens() -> None:
    """SmolLM2 on llama-server lists the same subtask again and again, repeats a sentence in
    an instruction, or names the same dependency sixty times, until its tokens run out: the
    plan's list, each subtask's strings and its own lists are bounded to fit."""
    plan_schema = plan_tool(get_settings()).schema
    fitted = fit_to_tokens(plan_schema, 1024)
    listed = fitted["properties"]["subtasks"]
    fits = 1024 // TOKENS_PER_LISTED_OBJECT
    assert listed["maxItems"] == fits
    item = listed["items"]["properties"]
    chars = sum(item[name]["maxLength"] for name in ("title", "instruction", "url"))
    assert chars <= 1024 * 2 // fits + 2 * 32  # the strings share the item's characters
    assert item["instruction"]["maxLength"] > item["title"]["maxLength"]  # in proportion
    assert item["depends_on"]["maxItems"] <= (1024 * 2 // fits) // 64
    assert item["id"] == plan_schema["properties"]["subtasks"]["items"]["properties"]["id"]
    assert plan_schema["properties"]["subtasks"]["maxItems"] == 60  # the tool is left as it was
    # With room for everything the planner's own bounds stay.
    roomy = fit_to_tokens(plan_schema, 10**6)["properties"]["subtasks"]
    assert (
        roomy["maxItems"] == 60 and roomy["items"]["properties"]["instruction"]["maxLength"] == 4000
    )
