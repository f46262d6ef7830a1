"""The event stream of one goal run, as `GET /task/{id}/events` sends it: its progress
documents from the hub (api/hub.py) and its subtasks' streamed text from the delta board
(api/deltas.py), merged as they come."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from uuid import UUID

from fastapi.sse import ServerSentEvent

from api.deltas import DeltaBoard
from api.hub import ProgressHub
from api.schemas import ErrorBody
from core.progress import ProgressDocument
from core.stream import Delta

HEARTBEAT, END = object(), object()
_Item = ProgressDocument | list[Delta] | BaseException | object


def version(doc: ProgressDocument) -> str:
    return hashlib.sha256(doc.model_dump_json().encode()).hexdigest()[:16]


def delta_event(delta: Delta) -> ServerSentEvent:
    """`{"subtask", "text"}`: text to append; with `"restart": true`, the whole text so far
    (the first of a stream, or a new attempt), to show instead of what was shown."""
    body: dict[str, object] = {"subtask": delta.subtask, "text": delta.text}
    if delta.restart:
        body["restart"] = True
    return ServerSentEvent(event="delta", raw_data=json.dumps(body))


async def goal_events(
    hub: ProgressHub,
    board: DeltaBoard,
    flow_run_id: UUID,
    heartbeat_s: float,
    last_event_id: str | None,
) -> AsyncIterator[ServerSentEvent]:
    last = last_event_id
    yield ServerSentEvent(retry=1000)
    # Both sources put what they have here; a full queue holds them back, and meanwhile
    # each merges what it has (the hub keeps the newest document, the board the text).
    queue: asyncio.Queue[_Item] = asyncio.Queue(4)
    ended = asyncio.Event()

    async def documents() -> None:
        try:
            async for doc in hub.watch(flow_run_id, heartbeat_s):
                await queue.put(HEARTBEAT if doc is None else doc)
            await queue.put(END)
        except Exception as exc:
            await queue.put(exc)

    async def deltas() -> None:
        async for batch in board.watch(str(flow_run_id), ended):
            await queue.put(batch)

    tasks = [asyncio.create_task(documents()), asyncio.create_task(deltas())]
    try:
        while (item := await queue.get()) is not END:
            if item is HEARTBEAT:
                yield ServerSentEvent(comment="heartbeat")
            elif isinstance(item, BaseException):  # the stream is open: say so in it, then end
                error = ErrorBody(detail=f"lost the Prefect event stream: {item!r}")
                yield ServerSentEvent(event="error", raw_data=error.model_dump_json())
                return
            elif isinstance(item, list):
                for delta in item:
                    yield delta_event(delta)
            elif isinstance(item, ProgressDocument) and (doc_version := version(item)) != last:
                last = doc_version
                yield ServerSentEvent(
                    id=doc_version, event="progress", raw_data=item.model_dump_json()
                )
    finally:
        ended.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    yield ServerSentEvent(event="end", raw_data="{}")
