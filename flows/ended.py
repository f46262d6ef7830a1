"""A goal run that a recurring goal started says, as it ends, how it ended: the event its
schedule's `notify` automation follows (services/notify.py)."""

from __future__ import annotations

from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.events import emit_event

from core.goal_run import ENDED_EVENT, prefect_run_url, schedule_resource

SUMMARY_CHARS = 1500


def announce_end(goal: str, state: State) -> None:
    """Emit `mission.goal-run.ended` for a run a schedule created (others have no webhook)."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    creator = run.created_by if run is not None else None
    if run is None or creator is None or creator.type != "SCHEDULE" or creator.id is None:
        return
    text = state.data if isinstance(state.data, str) else ""
    summary = text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"
    emit_event(
        ENDED_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{run.id}"},
        related=[
            {
                "prefect.resource.id": schedule_resource(creator.id),
                "prefect.resource.role": "schedule",
            }
        ],
        payload={
            "id": str(run.id),
            "goal": goal,
            "state": state.name,
            "message": state.message,
            "summary": summary,
            "prefect_url": prefect_run_url(run.id),
        },
    )
