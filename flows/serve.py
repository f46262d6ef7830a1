"""Serve the compound-goal deployment: a Prefect runner that starts each goal run it is given.

Run as `python -m flows.serve` (what `mission up` starts). Each goal run executes in its own
subprocess, so cancelling a run stops its process and everything in it.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import serve
from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture

from core.settings import get_settings
from flows.compound_goal import FLOW_NAME, compound_goal

DEPLOYMENT_NAME = "compound-goal"
DEPLOYMENT_PATH = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
ZOMBIE_AUTOMATION = "mission: crash goal runs whose runner died"


def goal_deployment() -> RunnerDeployment:
    deployment = compound_goal.to_deployment(
        name=DEPLOYMENT_NAME,
        description="Plan a compound goal, run its subtasks as their inputs are ready, join.",
    )
    assert isinstance(deployment, RunnerDeployment)  # the sync form, outside an event loop
    return deployment


def ensure_zombie_automation(after_s: int) -> None:
    """A goal run whose heartbeats stop (its runner was killed) is marked Crashed after
    `after_s`; without this it would stay Running forever (see DESIGN.md)."""
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


def main() -> None:
    settings = get_settings()
    serve(
        goal_deployment(),
        limit=settings.runner_limit,
        pause_on_shutdown=False,
        print_starting_message=False,
    )


if __name__ == "__main__":
    main()
