"""The API's count of active goal runs: one read of Prefect however many submissions arrive,
each reservation counted until the next read, the cap held within one process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services import active_runs
from services.active_runs import ActiveRuns


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Prefect's answer to "how many are active" (the last item), and how often it was asked
    (the list's length)."""
    answers = [3]

    async def count_active(client: Any) -> int:
        answers.append(answers[-1])
        await asyncio.sleep(0.01)  # a server round trip: submissions arrive meanwhile
        return answers[-1]

    monkeypatch.setattr(active_runs, "count_active", count_active)
    return answers


def test_a_burst_reads_the_count_once_and_is_held_to_the_cap(reads: list[int]) -> None:
    counter = ActiveRuns(refresh_s=60)

    async def burst() -> list[int | None]:
        return await asyncio.gather(*(counter.admit(None, cap=10) for _ in range(30)))  # type: ignore[arg-type]

    answers = asyncio.run(burst())
    assert len(reads) == 2  # the initial answer and one read for the whole burst
    assert answers.count(None) == 7  # 3 active + 7 admitted = the cap of 10
    assert [a for a in answers if a is not None] == [10] * 23


def test_a_release_gives_the_place_back_and_a_new_read_starts_afresh(reads: list[int]) -> None:
    counter = ActiveRuns(refresh_s=0)

    async def scenario() -> tuple[int | None, int | None, int | None]:
        first = await counter.admit(None, cap=4)  # type: ignore[arg-type]
        counter.release()
        reads.append(4)  # Prefect now counts 4 (other replicas, schedules)
        second = await counter.admit(None, cap=4)  # type: ignore[arg-type]
        reads.append(1)
        third = await counter.admit(None, cap=4)  # type: ignore[arg-type]
        return first, second, third

    assert asyncio.run(scenario()) == (None, 4, None)
