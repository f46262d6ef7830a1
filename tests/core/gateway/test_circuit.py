"""The per-tier circuit breaker, with a clock the test moves and the real SDK at the wire."""

from __future__ import annotations

import pytest

from core.errors import ModelError, ProviderError
from core.gateway import get_provider, route
from core.gateway.circuit import CircuitBreaker, CircuitProvider
from core.gateway.types import ModelRequest, Tool
from tests.fakes.anthropic_server import FakeAnthropic

REQUEST = ModelRequest(
    system="s", prompt="Subtask id: probe\n", tool=Tool("report_result", "r", {"type": "object"})
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_consecutive_failures_and_a_trial_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        breaker.before("fast")
        breaker.failed("fast", "500")
    breaker.before("fast")  # two failures: still closed
    breaker.failed("fast", "529")
    with pytest.raises(ProviderError, match="tier fast is paused after 3 failed calls in a row"):
        breaker.before("fast")
    breaker.before("deep")  # other tiers are not affected

    clock.now += 30
    breaker.before("fast")  # the cool-down is over: one trial call goes through...
    with pytest.raises(ProviderError, match="until a trial call answers"):
        breaker.before("fast")  # ...and only one
    breaker.succeeded("fast")
    breaker.before("fast")
    breaker.before("fast")


def test_a_failed_trial_opens_the_circuit_again_for_a_whole_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.failed("vision", "timeout")
    clock.now += 10
    breaker.before("vision")
    breaker.failed("vision", "timeout")
    clock.now += 9
    with pytest.raises(ProviderError, match="for 1 s more"):
        breaker.before("vision")


def test_a_success_in_between_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=Clock())
    breaker.failed("fast", "500")
    breaker.succeeded("fast")
    breaker.failed("fast", "500")
    breaker.before("fast")


def test_at_the_wire_an_open_tier_gets_no_requests_and_model_errors_do_not_open_it(
    fake_anthropic: FakeAnthropic, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("MISSION_SDK_MAX_RETRIES", "0")
    settings_env.setenv("MISSION_BREAKER_FAILURES", "2")
    provider = get_provider()
    assert isinstance(provider, CircuitProvider)

    fake_anthropic.on("Subtask id: probe", times=3, stop_reason="max_tokens")
    for _ in range(3):  # the model misbehaves; the provider is up
        with pytest.raises(ModelError):
            provider.complete(route("fast"), REQUEST)
    fake_anthropic.on("Subtask id: probe", status=500)
    for _ in range(2):
        with pytest.raises(ProviderError, match="answered 500"):
            provider.complete(route("fast"), REQUEST)
    before = len(fake_anthropic.calls)
    for _ in range(5):
        with pytest.raises(ProviderError, match="tier fast is paused"):
            provider.complete(route("fast"), REQUEST)
    assert len(fake_anthropic.calls) == before == 5  # nothing more reached the model


def test_subtasks_asking_at_once_share_one_provider_and_so_one_breaker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first subtasks of a goal run ask for the provider at the same moment; each must
    get the same one, or a failure is counted by a breaker nobody consults again."""
    import threading
    import time

    from core import gateway

    build = gateway._new_provider

    def slow_build(settings: gateway.Settings) -> gateway.Provider:
        time.sleep(0.05)  # building one (an SDK client, its HTTP pool) takes a while
        return build(settings)

    monkeypatch.setattr(gateway, "_new_provider", slow_build)
    start = threading.Barrier(8)
    got: list[object] = []

    def ask() -> None:
        start.wait()
        got.append(get_provider())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and len({id(p) for p in got}) == 1
