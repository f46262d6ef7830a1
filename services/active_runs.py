"""The API's count of active goal runs, for its cap (`MISSION_MAX_ACTIVE_RUNS`), kept without
holding every submission behind a lock while Prefect is asked.

The count is read from Prefect at most every `refresh_s` (one read however many submissions
arrive meanwhile) and each goal run this process creates is added to it until the next read
sees it. Checking and reserving touch only memory, so submissions no longer wait in line for
one another's reads and writes (a 30-goal burst queued for seconds behind them). The count
may lag runs created by schedules or other API replicas by up to `refresh_s`; the cap holds
regardless, because every goal run checks it again as it starts (flows/admission.py).
"""

from __future__ import annotations

import asyncio
import time

from prefect.client.orchestration import PrefectClient

from services.goal_runs import count_active

REFRESH_S = 0.5


class ActiveRuns:
    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._count = 0
        self._created = 0  # created here since the last read
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()

    async def admit(self, client: PrefectClient, cap: int) -> int | None:
        """Reserve a place for one more goal run; None when reserved, else how many are
        active (the caller answers 429). Call `release` if the run is not created after all."""
        if time.monotonic() - self._read_at > self.refresh_s:
            async with self._reading:  # one read for every submission waiting on it
                if time.monotonic() - self._read_at > self.refresh_s:
                    read_at = time.monotonic()
                    count = await count_active(client)
                    self._count, self._created, self._read_at = count, 0, read_at
        active = self._count + self._created
        if active >= cap:
            return active
        self._created += 1
        return None

    def release(self) -> None:
        self._created = max(0, self._created - 1)
