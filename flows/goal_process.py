"""What a goal-run process runs. The warm runner (flows/warm_runner.py) forks each goal run
from a fork server that has imported this module, and so everything a goal run needs
(Prefect, the flow, its tasks, the anthropic SDK, Playwright's client): a goal run starts in
milliseconds instead of seconds of imports, and is still its own OS process."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Preloaded, so that no goal run imports them (each would, at its first use of them: about
# half a second of imports holding the interpreter while its first subtasks start).
import anyio._backends._asyncio  # noqa: F401  anyio's event loop backend
import httpcore2  # noqa: F401  the anthropic SDK's connections
import prefect._internal.states
import prefect.task_engine  # the engine of every subtask
import prefect.utilities.visualization  # noqa: F401  the flow engine's (imports graphviz)
import rich._emoji_codes  # noqa: F401
import truststore  # noqa: F401  the SDK's certificates
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import run_flow
from setproctitle import setproctitle

import core.gateway.anthropic_provider
import tasks.browse
from core.prefect_compat import lean_goal_run, share_tls_context
from flows.compound_goal import compound_goal


def _complete_models() -> None:
    """Build every pydantic model's validator now. Pydantic defers a model's until its first
    use, and each goal run would build those of Prefect's client schemas, its events and
    the SDK's stream events again (profiled: about 100 ms of a goal run's start); built
    here, in the fork server, once (about 1.5 s), every child has them."""
    from pydantic import BaseModel

    def subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for model in set(subclasses(BaseModel)):
        if not getattr(model, "__pydantic_complete__", True):
            with contextlib.suppress(Exception):  # one that cannot be built yet waits for use
                model.model_rebuild()


share_tls_context()  # in the fork server: every goal run shares its one context
core.gateway.anthropic_provider.tls_context()  # and the SDK's, made here once
_complete_models()


def run_goal(claimed: str) -> None:
    """Run one goal run of the deployment in this (forked) process, to its final state;
    `claimed` is the run as the runner claimed it (Pending), as JSON."""
    flow_run = FlowRun.model_validate_json(claimed)
    setproctitle(f"mission goal-run {flow_run.id}")  # `ps` shows which goal run this is
    # Everything preloaded lives as long as the process: the collector's full passes skip it
    # (each would otherwise walk it all, holding the interpreter for a third of a second
    # while subtasks stream their text).
    gc.freeze()
    try:
        # Its final state is the run's outcome, whatever it is: the process exits 0 then,
        # and only a process that died mid-run exits otherwise (the runner marks it Crashed).
        with lean_goal_run():
            run_flow(
                compound_goal,
                flow_run=flow_run,
                parameters=flow_run.parameters,
                return_type="state",
            )
    finally:
        tasks.browse.shutdown()  # the fork's exit runs no atexit hooks: close Chromium here
