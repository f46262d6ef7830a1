"""Writes to a Prefect server that may be busy: a server on SQLite refuses a write that
collides with another (503), and Prefect's own client waits 2, 4, 8, 16, 32 s between
tries; the API retries such writes itself, sooner, so one refused write does not hold up
every request queued behind it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prefect.exceptions import PrefectHTTPStatusError

T = TypeVar("T")
TRIES = 9
# Then doubling: about 13 s in all before the last try. A burst of goal runs on two cores
# has kept SQLite busy for longer than 1.6 s (the first bound) and lost a submission.
FIRST_PAUSE_S = 0.05


async def when_not_busy(write: Callable[[], Awaitable[T]]) -> T:
    """`write()`, tried again after a short pause while the server answers 503."""
    for attempt in range(TRIES):
        try:
            return await write()
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 503 or attempt == TRIES - 1:
                raise
        await asyncio.sleep(FIRST_PAUSE_S * 2**attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")
