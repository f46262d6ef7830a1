"""The warm runner settles a run whose process has ended: a goal run never stays Cancelling,
Pending or Running with no process behind it (on a real Prefect server)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.states import Cancelling, Completed, Paused, Running, Scheduled

from flows.warm_runner import WarmRunner

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


@flow
def idle() -> None:
    """A flow to make runs of; it is never run here."""


async def _settled(*states: State[None], exit_code: int) -> State[None]:
    """Put a new run through `states`, then let the runner settle it as if its process
    had ended with `exit_code`."""
    async with get_client() as client:
        run = await client.create_flow_run(idle)
        for state in states:
            await client.set_flow_run_state(run.id, state, force=True)
        runner = WarmRunner(client, deployment_id=uuid4(), limit=1, poll_s=60)
        await runner._settle(UUID(str(run.id)), exit_code)
        after = (await client.read_flow_run(run.id)).state
    assert after is not None
    return after


def test_a_cancel_that_came_as_the_run_was_finishing_ends_cancelled_not_cancelling() -> None:
    # The process's Completed was refused (Prefect lets a Cancelling run end only Cancelled)
    # and it exited cleanly: the run would read Cancelling for ever.
    state = asyncio.run(_settled(Running(), Cancelling(message="cancelled by ann"), exit_code=0))
    assert (state.name, state.message) == ("Cancelled", "cancelled by ann")


def test_a_run_left_running_by_a_process_that_ended_is_crashed_with_how() -> None:
    clean = asyncio.run(_settled(Running(), exit_code=0))
    assert clean.name == "Crashed"
    assert clean.message == "the process running this goal ended (code 0); retry it to go on"
    killed = asyncio.run(_settled(Running(), exit_code=-9))
    assert killed.message == (
        "the process running this goal ended (killed by signal 9); retry it to go on"
    )


def test_a_suspended_run_and_an_ended_run_are_left_as_they_are() -> None:
    suspended = asyncio.run(_settled(Running(), Paused(reschedule=True), exit_code=0))
    assert suspended.name in ("Paused", "Suspended")
    completed = asyncio.run(_settled(Running(), Completed(), exit_code=0))
    assert completed.name == "Completed"


class _Unstartable:
    """A multiprocessing context whose processes cannot be started (fork refused)."""

    class Process:
        def __init__(self, **_: object) -> None:
            pass

        def start(self) -> None:
            raise OSError(12, "Cannot allocate memory")


def test_a_run_whose_process_cannot_be_started_is_crashed_and_the_runner_goes_on() -> None:
    async def claim() -> tuple[State[None], WarmRunner]:
        async with get_client() as client:
            run = await client.create_flow_run(idle, state=Scheduled())
            runner = WarmRunner(client, deployment_id=uuid4(), limit=1, poll_s=60)
            runner._context = _Unstartable()  # type: ignore[assignment]
            await runner._claim(run)
            after = (await client.read_flow_run(run.id)).state
        assert after is not None
        return after, runner

    state, runner = asyncio.run(claim())
    assert state.name == "Crashed"
    assert state.message == (
        "its process could not be started (OSError(12, 'Cannot allocate memory')); "
        "retry it to go on"
    )
    assert runner.children == {}
