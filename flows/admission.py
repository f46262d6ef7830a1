"""The active-run cap (`MISSION_MAX_ACTIVE_RUNS`) for every goal run, however it was made.

The API checks the cap before it creates a goal run, but Prefect's scheduler creates the
runs of recurring goals without asking it (a schedule made in the Prefect UI, or many due at
once, once made 101 runs in 8 s against a cap of 12). So a goal run checks again as it
starts: when the cap's worth of goal runs that started before it are still going (running,
paused for approval, or stopping), it does not run. It ends Cancelled, saying why
("skipped: ..."), and can be retried like any cancelled run.

Only runs that started earlier are counted, so of runs starting together the first ones go
and the later ones are skipped (counting every run claimed by a runner would skip them all:
a runner claims runs seconds before they are due).

Skipped rather than made to wait: a waiting goal run would hold a runner slot (a process)
while it waits, and a recurring goal's next run comes anyway.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import State, StateType
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Cancelled

from core.goal_run import FLOW_NAME
from core.settings import get_settings

_GOALS = FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
_GOING = FlowRunFilterState(
    type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING])
)


def runs_ahead(run_id: UUID, started: datetime | None = None) -> int:
    """Goal runs other than `run_id` that started before it (at `started`, read from the
    server when not given) and are still going."""
    with get_client(sync_client=True) as client:
        if started is None:
            started = client.read_flow_run(run_id).start_time or datetime.now(UTC)
        return client.count_flow_runs(
            flow_filter=_GOALS,
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=[run_id]),
                state=_GOING,
                start_time=FlowRunFilterStartTime(before_=started - timedelta(microseconds=1)),
            ),
        )


def skip_over_the_cap() -> State[Any] | None:
    """None when this goal run may go on; else the Cancelled state it ends in."""
    cap = get_settings().max_active_runs
    context = FlowRunContext.get()  # the engine's copy of the run: its start time is known
    started = context.flow_run.start_time if context and context.flow_run else None
    ahead = runs_ahead(UUID(str(flow_run.get_id())), started)
    if ahead < cap:
        return None
    return Cancelled(
        message=f"skipped: {ahead} goal runs were already running, the cap is {cap} "
        "(MISSION_MAX_ACTIVE_RUNS)"
    )
