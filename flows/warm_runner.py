"""The warm runner: claims each goal run of the deployment the moment it is created and runs
it in a process forked from a fork server that has already imported everything a goal run
needs.

Why a fork server: forking the runner itself would copy a process with threads and an event
loop running (its Prefect client, its event stream), and a child forked mid-way through
another thread's lock can deadlock. The fork server (multiprocessing's `forkserver`) is a
separate process that only imported `flows.goal_process` (Prefect, the flow and its tasks,
the anthropic SDK, Playwright's client; no thread, no loop) and forks a child per goal run:
about 20 ms instead of about 2 s of imports. Each goal run is still its own OS process: a
crash or a kill touches no other, and a killed one ends Crashed.

Pickup without a poll: the runner follows Prefect's event stream for the deployment's flow
runs and claims a run at its `Scheduled` event (a new run, a retry). A slow poll
(`MISSION_RUNNER_POLL_S`) is the safety net, and picks up scheduled runs as they fall due.
Claiming is Prefect's own: the runner proposes Pending, and only one claimer gets it.

Cancelling: the goal-run process learns of its own cancellation from its own state's event
(flows/cancel_watch.py) and stops by itself. If it has not ended `CANCEL_GRACE_S` after the
run became Cancelling, the runner kills it and marks the run Cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.states import Cancelled, Crashed, Pending

from flows.goal_process import run_goal

log = logging.getLogger("mission.runner")
CANCEL_GRACE_S = 10.0
HELD_BY_A_PROCESS = {StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING}
RESUBSCRIBE_S = 2.0


@dataclass
class _Child:
    process: BaseProcess
    reaper: asyncio.Task[None] | None = None
    cancel_deadline: asyncio.TimerHandle | None = field(default=None)


class WarmRunner:
    def __init__(self, client: PrefectClient, deployment_id: UUID, limit: int, poll_s: float):
        self.client = client
        self.deployment_id = deployment_id
        self.limit = limit
        self.poll_s = poll_s
        self.children: dict[UUID, _Child] = {}
        self._wake = asyncio.Event()
        self._context = multiprocessing.get_context("forkserver")
        # flows.serve too: each child runs the runner's main module again (multiprocessing
        # does, as `__mp_main__`), and its imports (Prefect's runner) then cost nothing.
        self._context.set_forkserver_preload(["flows.goal_process", "flows.serve"])

    def warm_up(self) -> None:
        """Start the fork server now (its imports take seconds), not at the first goal run."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    async def run(self) -> None:
        """Claim and run goal runs until cancelled."""
        following = asyncio.create_task(self._follow_events())
        polling = asyncio.create_task(self._poll())
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._claim_due()
        finally:
            following.cancel()
            polling.cancel()

    async def _poll(self) -> None:
        while True:
            self._wake.set()
            await asyncio.sleep(self.poll_s)

    async def _follow_events(self) -> None:
        """Wake at each new or rescheduled goal run of the deployment; watch cancellations."""
        event_filter = EventFilter(
            event=EventNameFilter(
                name=["prefect.flow-run.Scheduled", "prefect.flow-run.Cancelling"]
            ),
            related=EventRelatedFilter(id=[f"prefect.deployment.{self.deployment_id}"]),
        )
        while True:
            try:
                async with get_events_subscriber(filter=event_filter) as subscriber:
                    self._wake.set()  # anything created while (re)subscribing
                    async for event in subscriber:
                        if event.event.endswith(".Scheduled"):
                            self._wake.set()
                        else:
                            run_id = UUID(event.resource.id.rpartition(".")[2])
                            self._cancelling(run_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll goes on meanwhile
                log.warning("lost Prefect's event stream (%s); following it again", exc)
                await asyncio.sleep(RESUBSCRIBE_S)

    async def _claim_due(self) -> None:
        free = self.limit - len(self.children)
        if free <= 0:
            return
        runs = await self.client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[self.deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=free,
        )
        # Claimed together: each claim is a round trip to the server, and a burst's last run
        # would otherwise wait for every claim before it.
        await asyncio.gather(*(self._claim(r) for r in runs if r.id not in self.children))

    async def _claim(self, run: FlowRun) -> None:
        pending: State[Any] = Pending()
        run_id = run.id
        claimed = await self.client.set_flow_run_state(run_id, pending)
        if claimed.status != SetStateStatus.ACCEPT:
            return  # another runner claimed it, or it was cancelled meanwhile
        # The child starts from the run as claimed, without reading it again first (the
        # engine reads it as it starts anyway).
        run.state = claimed.state or run.state
        process = self._context.Process(
            target=run_goal,
            args=(run.model_dump_json(),),
            name=f"goal-run {run_id}",
            daemon=False,
        )
        try:
            process.start()
        except Exception as exc:  # the runner goes on; the run must not stay Pending
            log.error("could not start a process for goal run %s: %r", run_id, exc)
            why = f"its process could not be started ({exc!r}); retry it to go on"
            await self.client.set_flow_run_state(run_id, Crashed(message=why), force=True)
            return
        child = self.children[run_id] = _Child(process)
        child.reaper = asyncio.create_task(self._reap(run_id, child))

    async def _reap(self, run_id: UUID, child: _Child) -> None:
        await asyncio.to_thread(child.process.join)
        if child.cancel_deadline is not None:
            child.cancel_deadline.cancel()
        del self.children[run_id]
        self._wake.set()  # a slot is free
        await self._settle(run_id, child.process.exitcode)

    async def _settle(self, run_id: UUID, code: int | None) -> None:
        """A goal-run process ended; its run must have ended too. One still Cancelling (a
        cancel that came as the run was finishing: Prefect then refuses every end but
        Cancelled, and the process exits with the run Cancelling) is Cancelled. One still
        Pending or Running lost its process mid-run: Crashed."""
        run = await self.client.read_flow_run(run_id)
        if run.state is None or run.state.type not in HELD_BY_A_PROCESS:
            return  # it ended, or was scheduled again (a retry) meanwhile
        if run.state.type == StateType.CANCELLING:
            why = run.state.message or "cancelled"
            await self.client.set_flow_run_state(run_id, Cancelled(message=why), force=True)
            return
        if code == 0 and run.state.type == StateType.PAUSED:
            return  # suspended: it waits for a resume with no process
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"code {code}"
        await self.client.set_flow_run_state(
            run_id,
            Crashed(message=f"the process running this goal ended ({how}); retry it to go on"),
            force=True,
        )

    def _cancelling(self, run_id: UUID) -> None:
        child = self.children.get(run_id)
        if child is None or child.cancel_deadline is not None:
            return
        loop = asyncio.get_running_loop()
        child.cancel_deadline = loop.call_later(
            CANCEL_GRACE_S, lambda: asyncio.ensure_future(self._kill(run_id))
        )

    async def _kill(self, run_id: UUID) -> None:
        """The fallback: a cancelled goal run that did not stop by itself in time."""
        child = self.children.get(run_id)
        if child is None or child.process.pid is None:
            return
        why = f"cancelled; the goal run's process was killed after {CANCEL_GRACE_S:g} s"
        await self.client.set_flow_run_state(run_id, Cancelled(message=why), force=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.process.pid, signal.SIGKILL)
