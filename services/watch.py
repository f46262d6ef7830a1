"""Watch a goal run's progress document change, pushed by Prefect's event stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.events import Event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter

from core.goal_run import subtask_id_of
from core.progress import ProgressDocument, count_states
from core.states import bucket_of, has_ended
from services.progress import SeenState, read_progress

QUIET_READ_S = 5.0
log = logging.getLogger(__name__)


def subtask_state_event(event: Event) -> tuple[str, SeenState] | None:
    """(subtask id, state) from a task-run state event of a subtask; None for other events."""
    if not event.event.startswith("prefect.task-run."):
        return None
    subtask = subtask_id_of(event.resource.get("prefect.resource.name") or "")
    name = event.resource.get("prefect.state-name")
    if subtask is None or not name:
        return None
    return subtask, SeenState(name, event.resource.get("prefect.state-message"), event.occurred)


def _stage(state: str) -> int:
    bucket = bucket_of(state)
    return 0 if bucket == "pending" else 1 if bucket == "running" else 2


def with_announced(doc: ProgressDocument, seen: Mapping[str, SeenState]) -> ProgressDocument:
    """The document with the subtask states events announced since it was read, so a change
    is shown before the next read of the database (a state never moves backwards here)."""
    subtasks = []
    for s in doc.subtasks:
        announced = seen.get(s.id)
        if (
            announced is not None
            and announced.name != s.state
            and not has_ended(s.state)
            and _stage(announced.name) >= _stage(s.state)
        ):
            update: dict[str, Any] = {"state": announced.name}
            if _stage(announced.name) == 1:
                update["started_at"] = s.started_at or announced.at
            elif has_ended(announced.name):
                update["ended_at"] = announced.at
            s = s.model_copy(update=update)
        subtasks.append(s)
    return doc.model_copy(update={"subtasks": subtasks, "counts": count_states(subtasks)})


async def watch_progress(
    client: PrefectClient, flow_run_id: UUID
) -> AsyncIterator[ProgressDocument]:
    """Yield the progress document now and again each time it changes; ends after a terminal
    document.

    Changes are pushed by Prefect's event stream. A subtask's new state is shown from its
    event at once, then the document is read again (the database records the state a moment
    later; learned text and usage arrive as artifacts); events that arrive while the
    document is being read are folded into the next read. When no event has come for
    `QUIET_READ_S`, the document is read anyway: the stream has been seen to lose an event
    (a run's Paused, in a busy test session), and a lost event must not freeze the page.
    If the stream itself ends, the document is read every `QUIET_READ_S` until it finishes.
    """
    seen: dict[str, SeenState] = {}
    doc = await read_progress(client, flow_run_id, seen=seen)
    yield doc
    if doc.finished:
        return
    changed = asyncio.Event()
    event_filter = EventFilter(
        any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])
    )
    async with get_events_subscriber(filter=event_filter) as subscriber:

        async def pump() -> None:
            async for event in subscriber:
                if (found := subtask_state_event(event)) is not None:
                    subtask, state = found
                    if subtask not in seen or seen[subtask].at <= state.at:
                        seen[subtask] = state
                changed.set()

        pumping = asyncio.create_task(pump())
        lost = False
        try:
            changed.set()  # read once more: something may have happened while subscribing
            while True:
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait(
                    {waiter} if lost else {waiter, pumping},
                    timeout=QUIET_READ_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                if pumping.done() and not lost:
                    # Prefect's subscriber has given up reconnecting (seen on a busy
                    # scale-out stack): the document is read every QUIET_READ_S from now on.
                    lost = True
                    error = None if pumping.cancelled() else pumping.exception()
                    log.warning(
                        "the event stream of goal run %s ended (%r): reading its progress "
                        "every %.0f s",
                        flow_run_id,
                        error,
                        QUIET_READ_S,
                    )
                changed.clear()
                early = with_announced(doc, seen)
                if early != doc:  # a subtask changed state: show it now, read the rest next
                    doc = early
                    yield doc
                try:
                    latest = await read_progress(client, flow_run_id, seen=seen)
                except httpx.TransportError as exc:  # seen under load on scale-out: ReadError
                    log.warning("reading goal run %s failed (%r); again soon", flow_run_id, exc)
                    continue
                if latest != doc:
                    doc = latest
                    yield doc
                if doc.finished:
                    return
        finally:
            pumping.cancel()
