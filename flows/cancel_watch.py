"""A goal-run process learns of its own cancellation at once: it follows its own flow run's
state events on Prefect's event stream (about 10 ms after the state is set, where the
runner's periodic check took seconds), sets the run's stop, and says so with an event the
API waits for before it answers the cancel request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

from core.goal_run import STOPPING_EVENT
from core.stop import Stop

log = logging.getLogger(__name__)
CANCEL_STATES = ("Cancelling", "Cancelled")


class CancelWatch:
    """Follows one goal run's state events in a daemon thread while the run executes.

    `resumed` is set when the run goes back to Running (a plan approved), so an approval
    wait wakes at once too.
    """

    def __init__(self, flow_run_id: UUID, stop: Stop) -> None:
        self.flow_run_id = flow_run_id
        self.stop = stop
        self.resumed = threading.Event()
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="mission-cancel-watch", daemon=True)

    def start(self) -> CancelWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        self._task = self._loop.create_task(self._follow())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    async def _follow(self) -> None:
        resource = f"prefect.flow-run.{self.flow_run_id}"
        event_filter = EventFilter(
            event=EventNameFilter(prefix=["prefect.flow-run."]),
            any_resource=EventAnyResourceFilter(id=[resource]),
        )
        try:
            async with get_events_subscriber(filter=event_filter) as subscriber:
                # A cancel that came before the subscription is in the run's state; the
                # stream replays the last minute's events too, and those older than this
                # state belong to an earlier attempt of the run (a retry after a cancel).
                async with get_client() as client:
                    run = await client.read_flow_run(self.flow_run_id)
                if run.state is not None and run.state.name in CANCEL_STATES:
                    self._cancelled(run.state.message)
                since = run.state.timestamp if run.state is not None else None
                self.ready.set()
                async for event in subscriber:
                    if since is not None and event.occurred < since:
                        continue
                    name = event.event.rpartition(".")[2]
                    if name in CANCEL_STATES:
                        self._cancelled(event.resource.get("prefect.state-message"))
                    elif name == "Running":
                        self.resumed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the runner's fallback (a kill after a grace) still holds
            log.warning("goal run %s cannot follow its own events: %s", self.flow_run_id, exc)
        finally:
            self.ready.set()

    def _cancelled(self, message: str | None) -> None:
        if self.stop.set(message or "cancelled", "cancelled"):
            emit_event(
                STOPPING_EVENT,
                resource={"prefect.resource.id": f"prefect.flow-run.{self.flow_run_id}"},
                payload={"reason": self.stop.reason},
            )
