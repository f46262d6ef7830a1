"""Serve the compound-goal deployment: `python -m flows.serve` (what `mission up` starts).

By default the warm runner (flows/warm_runner.py): each goal run is claimed as it is created
and forked from a process that has imported everything already. `--stock` serves it with
Prefect's own `serve` instead (a fresh Python process per goal run, found by polling): the
baseline the service benchmark compares with.
"""

from __future__ import annotations

import argparse
import asyncio

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment

from core.goal_run import DEPLOYMENT_NAME
from core.settings import get_settings
from flows.compound_goal import compound_goal
from flows.warm_runner import WarmRunner


def goal_deployment() -> RunnerDeployment:
    deployment = compound_goal.to_deployment(
        name=DEPLOYMENT_NAME,
        description="Plan a compound goal, run its subtasks as their inputs are ready, join.",
    )
    assert isinstance(deployment, RunnerDeployment)  # the sync form, outside an event loop
    return deployment


async def serve_warm(deployment: RunnerDeployment) -> None:
    settings = get_settings()
    deployment_id = await deployment.aapply()
    async with get_client() as client:
        runner = WarmRunner(client, deployment_id, settings.runner_limit, settings.runner_poll_s)
        runner.warm_up()
        await runner.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__)
    parser.add_argument("--stock", action="store_true", help="serve with Prefect's own runner")
    args = parser.parse_args(argv)
    if args.stock:
        settings = get_settings()
        serve(
            goal_deployment(),
            limit=settings.runner_limit,
            pause_on_shutdown=False,
            print_starting_message=False,
        )
        return
    asyncio.run(serve_warm(goal_deployment()))


if __name__ == "__main__":
    main()
