"""`mission doctor` and the endpoint check at `mission up`, against the fake Messages server."""

from __future__ import annotations

import pytest

from cli.main import main
from tests.fakes.anthropic_server import FakeAnthropic

LLAMA_NO_IMAGES = "image input is not supported - hint: you may need to provide the mmproj"


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor", "--timeout", "10"])
    return code, capsys.readouterr().out


def row(out: str, tier: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(f"{tier} "))


def test_every_tier_is_usable_on_an_endpoint_that_does_everything(
    fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(capsys)
    assert code == 0, out
    assert "every tier usable" in out
    assert row(out, "vision")[2:] == ["ok"] * 7
    # One probe per distinct model and check, plus the vision tier's image: never retried.
    assert len(fake_anthropic.calls) == 3 * 2 + 1


def test_a_text_only_vision_model_is_found_and_explained(
    fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_anthropic.refuse_images = LLAMA_NO_IMAGES
    code, out = doctor(capsys)
    assert code == 1
    assert row(out, "vision")[-2:] == ["no", "no"]  # image, usable
    assert row(out, "fast")[-1] == "ok"
    assert "takes no image input" in out and LLAMA_NO_IMAGES in out


def test_an_endpoint_that_does_not_force_tools_is_pointed_at_json_schema(
    fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_anthropic.on("Report the result", stop_reason="end_turn")  # prose, no tool call
    code, out = doctor(capsys)
    assert code == 1
    assert row(out, "deep")[2:] == ["ok", "ok", "ok", "no", "ok", "-", "no"]
    assert "try MISSION_STRUCTURED=json_schema" in out


def test_json_schema_mode_is_usable_where_forced_tools_are_not(
    fake_anthropic: FakeAnthropic,
    capsys: pytest.CaptureFixture[str],
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    fake_anthropic.on("Report the result", stop_reason="end_turn")
    code, out = doctor(capsys)
    assert code == 0, out
    assert "MISSION_STRUCTURED=json_schema" in out


@pytest.mark.parametrize(
    ("variable", "value", "code", "fast_row", "said"),
    [
        # Nothing listens there: the rest is not probed.
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9", 1, ["no"] + ["-"] * 5 + ["no"], "server up"),
        # Nothing to probe: every check is answered by construction, and it says so.
        ("MISSION_PROVIDER", "simulated", 0, ["ok"] * 5 + ["-", "ok"], "simulated provider"),
    ],
)
def test_where_no_model_answers_the_doctor_says_why(
    capsys: pytest.CaptureFixture[str],
    settings_env: pytest.MonkeyPatch,
    variable: str,
    value: str,
    code: int,
    fast_row: list[str],
    said: str,
) -> None:
    settings_env.setenv(variable, value)
    exit_code, out = doctor(capsys)
    assert exit_code == code, out
    assert row(out, "fast")[2:] == fast_row
    assert said in out


def test_mission_up_refuses_a_vision_tier_without_image_input(
    fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_anthropic.refuse_images = LLAMA_NO_IMAGES
    assert main(["up", "--local-demo"]) == 2
    captured = capsys.readouterr()
    assert "cannot serve tier(s) vision" in captured.err and "--go-on" in captured.err
    assert "Mission Control" not in captured.out  # nothing was started
