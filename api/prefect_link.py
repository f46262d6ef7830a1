"""Whether the Prefect server answers, checked in the background, so that while it is away
every request is told so at once (503) instead of waiting out the client's retries."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from core.errors import MissionError

CHECK_EVERY_S = 2.0
CHECK_TIMEOUT_S = 3.0
FAILURES_TO_DOWN = 3  # refused three times in a row (twice was seen under a load burst)


class PrefectUnreachable(MissionError):
    """The Prefect server does not answer; the API cannot read or start goal runs."""

    @classmethod
    def at(cls, api_url: str) -> PrefectUnreachable:
        return cls(f"the Prefect server at {api_url} is unreachable")


class PrefectLink:
    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.up = True  # until a check says otherwise
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    def require(self) -> None:
        if not self.up:
            raise PrefectUnreachable.at(self.api_url)

    async def check(self, client: httpx.AsyncClient) -> None:
        try:
            try:
                await client.get(f"{self.api_url}/health")
            except httpx.RemoteProtocolError:
                # A kept-alive connection the busy server had just closed: that says nothing
                # yet; ask once more, on a new connection.
                await client.get(f"{self.api_url}/health", headers={"connection": "close"})
            away = False  # any answer: the server is there, if busy
        except (httpx.ConnectError, httpx.RemoteProtocolError):
            away = True  # refused, or dropped twice: nobody is listening
        except httpx.TimeoutException:
            return  # a server too busy to answer in time is not away: no change
        self._failures = self._failures + 1 if away else 0
        self.up = self._failures < FAILURES_TO_DOWN

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
            while True:
                await self.check(client)
                await asyncio.sleep(CHECK_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
