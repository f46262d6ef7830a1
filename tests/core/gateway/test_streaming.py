"""Streamed output through the real SDK against the fake Messages server: `on_text` sees the
reply's `output` grow, the finished reply is the one an unstreamed call returns, errors are
the same, and a stopped run closes the stream's connection."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from core.errors import ModelError, ProviderError
from core.gateway import get_provider, route
from core.gateway.types import ModelRequest, Reply, Tool
from core.stop import NEVER, GoalStopped, Stop
from core.stream import partial_string
from tests.fakes.anthropic_server import STREAM_CHUNKS, FakeAnthropic

TOOL = Tool(name="report_result", description="report", schema={"type": "object"})
OUTPUT = "The survey found three sources that agree on the figures, and one that does not."


class Seen:
    """An `on_text` that keeps what it was called with, and when."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.times: list[float] = []
        self.first = threading.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.times.append(time.time())
        self.first.set()


def ask(on_text: Seen | None = None, stop: Stop = NEVER) -> Reply:
    request = ModelRequest(
        system="fixed system prompt",
        prompt="Subtask id: probe",
        tool=TOOL,
        cache_system=True,
        on_text=on_text,
    )
    return get_provider().complete(route("fast"), request, stop)


def assert_grows(texts: list[str]) -> None:
    for before, after in itertools.pairwise(texts):
        assert len(before) < len(after) and after.startswith(before), (before, after)


def test_a_streamed_reply_grows_in_steps_and_ends_as_the_unstreamed_reply(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on(
        "probe",
        tool_input={"output": OUTPUT, "learned": "l"},
        usage=(1000, 200),
        cache=(300, 1200),
        delay=0.3,
    )
    unstreamed = ask()
    seen = Seen()
    streamed = ask(seen)

    assert streamed == unstreamed  # data, model and usage (cache reads and writes too)
    assert streamed.usage.cache_read_input_tokens == 1200 and streamed.usage.output_tokens == 200
    assert len(seen.texts) >= 3
    assert_grows(seen.texts)
    assert seen.texts[-1] == OUTPUT
    plain, call = fake_anthropic.calls
    assert "stream" not in plain.body and call.body["stream"] is True
    assert len(call.chunks) == STREAM_CHUNKS
    # Each step is what had been written when it was read: the text grew while it streamed.
    assert seen.times[0] < call.chunks[-1][0]
    wire = [partial_string(text) for _, text in call.chunks]
    assert seen.texts == [t for i, t in enumerate(wire) if t and t not in wire[:i]]


def test_escapes_and_non_ascii_text_stream_as_they_end(fake_anthropic: FakeAnthropic) -> None:
    output = 'She said "no" \\ twice;\nC:\\temp\\new\t\\u00e9 — café, 中文, 😀 "\\" \U0001f680\n'
    fake_anthropic.on("probe", tool_input={"learned": "é\\", "output": output, "n": [1, {}]})
    seen = Seen()
    reply = ask(seen)
    assert reply.data == {"learned": "é\\", "output": output, "n": [1, {}]}
    assert len(seen.texts) >= 3
    assert_grows(seen.texts)
    assert seen.texts[-1] == output
    # Pieces were cut inside escape sequences, yet every step is text the writer wrote.
    cut = [text for _, text in fake_anthropic.calls[0].chunks[:-1]]
    assert any((len(text) - len(text.rstrip("\\"))) % 2 for text in cut)
    assert all(output.startswith(text) for text in seen.texts)


def test_a_streamed_reply_that_runs_out_of_tokens_is_a_model_error_with_its_cost(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("probe", stop_reason="max_tokens", usage=(50, 4096))
    seen = Seen()
    with pytest.raises(ModelError, match="ran out of tokens") as info:
        ask(seen)
    assert info.value.usage is not None and info.value.usage["output_tokens"] == 4096
    assert fake_anthropic.calls[0].body["stream"] is True
    assert seen.texts == []  # a text block, not the tool: there was no output to show


@pytest.mark.parametrize(
    ("status", "message"), [(500, "slot 3 crashed"), (429, "slow down"), (400, "bad input")]
)
def test_a_streamed_request_fails_as_an_unstreamed_one_does(
    fake_anthropic: FakeAnthropic, status: int, message: str
) -> None:
    fake_anthropic.on("probe", status=status, message=message, retry_after=0.01)
    with pytest.raises(ProviderError) as unstreamed:
        ask()
    sent = len(fake_anthropic.calls)
    with pytest.raises(ProviderError) as streamed:
        ask(Seen())
    assert streamed.value.message == unstreamed.value.message
    assert message in streamed.value.message
    assert streamed.value.transient == unstreamed.value.transient == (status != 400)
    assert len(fake_anthropic.calls) == 2 * sent  # the SDK retried the stream's opening too
    assert all(c.body["stream"] is True for c in fake_anthropic.calls[sent:])


def test_a_stream_that_stalls_past_the_timeout_is_a_transient_failure(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    """The stream opens at once, then waits longer than the timeout between two pieces: an
    error raised while reading, which the SDK leaves to its caller."""
    settings_env.setenv("MISSION_MODEL_TIMEOUT_S", "0.5")
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    fake_anthropic.on("probe", tool_input={}, delay=1.2 - fake_anthropic.latency)
    with pytest.raises(ProviderError, match=r"did not answer in time \(0.5 s\)") as info:
        ask(Seen())
    assert info.value.transient
    assert len(fake_anthropic.calls[0].chunks) == 1  # it failed mid-stream, not at the start


@pytest.mark.parametrize(
    ("kind", "said", "transient"),
    [
        ("overloaded_error", "answered 529: Overloaded", True),
        ("invalid_request_error", "refused the request (400): Overloaded", False),
    ],
)
def test_an_error_event_mid_stream_counts_as_the_status_its_type_stands_for(
    fake_anthropic: FakeAnthropic, kind: str, said: str, transient: bool
) -> None:
    """Anthropic may end a stream it began with 200 with an error event: overloaded_error is
    its 529, to be tried again later, not a request refused for good."""
    fake_anthropic.on("probe", stream_error=kind, message="Overloaded")
    with pytest.raises(ProviderError) as info:
        ask(Seen())
    assert said in info.value.message
    assert info.value.transient is transient
    assert [c.status for c in fake_anthropic.calls] == [-3]  # no retry once it streamed


def test_stopping_the_run_mid_stream_aborts_the_request_at_once(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.on("probe", tool_input={"output": OUTPUT, "learned": "l"}, delay=3.0)
    stop, seen = Stop(), Seen()
    stopped_at: list[float] = []

    def stop_after_the_first_text() -> None:
        assert seen.first.wait(10)
        stopped_at.append(time.time())
        stop.set("cancelled by a test")

    stopper = threading.Thread(target=stop_after_the_first_text)
    stopper.start()
    with pytest.raises(GoalStopped, match="cancelled by a test"):
        ask(seen, stop)
    raised = time.time()
    stopper.join()
    # About 2.5 s of the reply were still to come.
    assert raised - stopped_at[0] < 0.5
    call = fake_anthropic.calls[0]
    deadline = time.time() + 2
    while call.aborted is None and time.time() < deadline:
        time.sleep(0.01)
    assert call.aborted is not None and call.aborted - stopped_at[0] < 0.5
    assert call.status == -2
    assert 1 <= len(call.chunks) < STREAM_CHUNKS
    assert seen.texts and OUTPUT.startswith(seen.texts[-1]) and seen.texts[-1] != OUTPUT


def test_json_schema_mode_shows_the_whole_output_once(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_STRUCTURED", "json_schema")
    fake_anthropic.on("probe", tool_input={"output": OUTPUT, "learned": "l"}, times=1)
    seen = Seen()
    reply = ask(seen)
    assert reply.data == {"output": OUTPUT, "learned": "l"}
    assert seen.texts == [OUTPUT]
    assert "stream" not in fake_anthropic.calls[0].body
    fake_anthropic.on("probe", tool_input={"subtasks": []})  # no output to show: no call
    seen = Seen()
    assert ask(seen).data == {"subtasks": []}
    assert seen.texts == []
