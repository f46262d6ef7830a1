"""A watched goal run's document keeps up even when Prefect's event stream loses an event
(seen once in a busy test session: a run's Paused never reached the API, and its page read
Running for 90 s). Real Prefect server; only the stream is replaced, by one that loses every
event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Paused, Running

import services.watch
from services.watch import watch_progress

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@flow
def idle() -> None:
    """A flow to make runs of; it is never run here."""


class _LosesEverything:
    """An event stream that stays open and delivers nothing."""

    async def __aenter__(self) -> _LosesEverything:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()  # never
        raise StopAsyncIteration


def _states_seen_as_the_run_pauses(
    monkeypatch: pytest.MonkeyPatch, stream: type[_LosesEverything]
) -> list[str]:
    """Watch a Running run through a `stream` (QUIET_READ_S 0.3 s), pause it once the
    watcher waits, and return the states of the documents it yielded within 5 s."""
    monkeypatch.setattr(services.watch, "get_events_subscriber", lambda **_: stream())
    monkeypatch.setattr(services.watch, "QUIET_READ_S", 0.3)

    async def watch() -> list[str]:
        async with get_client() as client:
            run = await client.create_flow_run(idle)
            await client.set_flow_run_state(run.id, Running(), force=True)
            docs = watch_progress(client, run.id)
            seen = [(await anext(docs)).state]
            # The watcher subscribes, reads again and waits for an event; then the run pauses.
            following = asyncio.ensure_future(anext(docs))
            await asyncio.sleep(1)
            await client.set_flow_run_state(run.id, Paused(), force=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    seen.append((await following).state)
            await docs.aclose()
            return seen

    return asyncio.run(watch())


def test_a_lost_event_does_not_freeze_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _states_seen_as_the_run_pauses(monkeypatch, _LosesEverything) == ["Running", "Paused"]


class _Breaks(_LosesEverything):
    """An event stream that fails at once, as Prefect's subscriber does when it has given up
    reconnecting (seen on a busy scale-out stack: the page's stream ended in an error)."""

    async def __anext__(self) -> Any:
        raise TimeoutError


def test_a_failed_event_stream_falls_back_to_reading_the_document(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert _states_seen_as_the_run_pauses(monkeypatch, _Breaks) == ["Running", "Paused"]
    assert "reading its progress every" in caplog.text and "TimeoutError" in caplog.text


def test_a_failed_read_is_read_again_not_the_end_of_the_watch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen on the loaded scale-out stack: one read of the Prefect API failed with ReadError
    and the page's stream ended in an error."""
    real_read = services.watch.read_progress
    reads = 0

    async def flaky_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:  # the first read after subscribing
            raise httpx.ReadError("")
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(services.watch, "read_progress", flaky_read)
    assert _states_seen_as_the_run_pauses(monkeypatch, _LosesEverything) == ["Running", "Paused"]
    assert "ReadError" in caplog.text
