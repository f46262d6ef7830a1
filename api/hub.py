"""One feed of progress documents per watched goal run, shared by all its watchers.

However many pages watch a goal run, the API follows Prefect's event stream for it once and
reads the document once per change; every watcher gets the latest document.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

from prefect.client.orchestration import PrefectClient

from core.progress import ProgressDocument
from services.watch import watch_progress


@dataclass
class _Feed:
    watchers: set[asyncio.Queue[ProgressDocument | BaseException | None]] = field(
        default_factory=set
    )
    latest: ProgressDocument | None = None
    task: asyncio.Task[None] | None = None


class ProgressHub:
    def __init__(self, client: PrefectClient) -> None:
        self._client = client
        self._feeds: dict[UUID, _Feed] = {}

    def latest(self, flow_run_id: UUID) -> ProgressDocument | None:
        """The newest document of a goal run someone watches (kept current by Prefect's event
        stream, so it is as fresh as a read of the database would be); None otherwise."""
        feed = self._feeds.get(flow_run_id)
        return feed.latest if feed is not None else None

    async def watch(
        self, flow_run_id: UUID, heartbeat_s: float
    ) -> AsyncIterator[ProgressDocument | None]:
        """Documents as they change (the current one first); None when `heartbeat_s` passed
        without a change. Ends after a terminal document."""
        feed = self._feeds.get(flow_run_id)
        if feed is None:
            feed = self._feeds[flow_run_id] = _Feed()
            feed.task = asyncio.create_task(self._follow(flow_run_id, feed))
        # Only the newest document matters to a watcher that fell behind.
        queue: asyncio.Queue[ProgressDocument | BaseException | None] = asyncio.Queue(maxsize=1)
        if feed.latest is not None:
            queue.put_nowait(feed.latest)
        feed.watchers.add(queue)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=heartbeat_s)
                except TimeoutError:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    return
                yield item
                if item.finished:
                    return
        finally:
            feed.watchers.discard(queue)
            if not feed.watchers and self._feeds.get(flow_run_id) is feed:
                del self._feeds[flow_run_id]
                if feed.task is not None:
                    feed.task.cancel()

    async def _follow(self, flow_run_id: UUID, feed: _Feed) -> None:
        try:
            async for doc in watch_progress(self._client, flow_run_id):
                feed.latest = doc
                self._offer(feed, doc)
            if feed.latest is None or not feed.latest.finished:
                self._offer(feed, None)  # a finished document already ends each watcher
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to every watcher, which reports it
            self._offer(feed, exc)
        finally:
            if self._feeds.get(flow_run_id) is feed:
                del self._feeds[flow_run_id]

    @staticmethod
    def _offer(feed: _Feed, item: ProgressDocument | BaseException | None) -> None:
        for queue in list(feed.watchers):
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()  # replace what the watcher has not taken yet
            queue.put_nowait(item)

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
        self._feeds.clear()
