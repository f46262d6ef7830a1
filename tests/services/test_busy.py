"""Writes refused by a busy Prefect server (503) are tried again, a bounded number of times."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prefect.exceptions import PrefectHTTPStatusError

from services import busy

FIRST_PAUSE_S = busy.FIRST_PAUSE_S  # the real one; the tests below run without pauses


def _refusal(status: int) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://prefect.test/api/deployments/x/create_flow_run")
    response = httpx.Response(status, request=request)
    return PrefectHTTPStatusError("refused", request=request, response=response)


class Write:
    """A write the server refuses `refusals` times with `status`, then accepts."""

    def __init__(self, refusals: int, status: int = 503) -> None:
        self.refusals, self.status, self.tries = refusals, status, 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.tries <= self.refusals:
            raise _refusal(self.status)
        return "created"


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(busy, "FIRST_PAUSE_S", 0.0)


def test_a_write_refused_while_busy_is_tried_again_until_it_is_accepted() -> None:
    write = Write(refusals=busy.TRIES - 1)
    assert asyncio.run(busy.when_not_busy(write)) == "created"
    assert write.tries == busy.TRIES


def test_a_server_busy_past_every_try_is_reported_after_the_last() -> None:
    write = Write(refusals=busy.TRIES)
    with pytest.raises(PrefectHTTPStatusError):
        asyncio.run(busy.when_not_busy(write))
    assert write.tries == busy.TRIES


def test_other_refusals_are_not_tried_again() -> None:
    write = Write(refusals=1, status=409)
    with pytest.raises(PrefectHTTPStatusError):
        asyncio.run(busy.when_not_busy(write))
    assert write.tries == 1


def test_the_pauses_add_up_to_about_thirteen_seconds_as_documented() -> None:
    pauses = [FIRST_PAUSE_S * 2**attempt for attempt in range(busy.TRIES - 1)]
    assert 12 < sum(pauses) < 14  # before jitter (x0.5 to x1.5 each)
