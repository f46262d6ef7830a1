"""Goal runs whose process is gone: marked Crashed at once when it is known (the runner or
the stack died), or by a Prefect automation when their heartbeats stop (workers)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.states import Crashed

from services.goal_runs import ACTIVE, NotServed, goal_deployment

ZOMBIE_AUTOMATION = "mission: crash goal runs whose runner died"


async def crash_active_runs(client: PrefectClient, deployment: str, why: str) -> list[UUID]:
    """Mark the deployment's goal runs that have (had) a process, Crashed: for when the
    process that ran them is known to be gone. Runs still waiting to start are left alone."""
    try:
        deployment_id = await goal_deployment(client, deployment)
    except NotServed:
        return []
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE))
        ),
    )
    for run in runs:
        await client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    return [run.id for run in runs]


def ensure_zombie_automation(after_s: int) -> None:
    """A goal run whose heartbeats stop (its worker was killed) is marked Crashed after
    `after_s`; without this it would stay Running forever (docs/reliability.md)."""
    automation = Automation(
        name=ZOMBIE_AUTOMATION,
        description="Goal runs send a heartbeat; a run that falls silent has lost its process.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {after_s} s: the process running this goal died",
            )
        ],
    )
    try:
        existing = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:
        automation.create()
        return
    assert isinstance(existing, Automation)
    automation.id = existing.id
    automation.update()
