"""LangGraph baselines for the makespan benchmark (issue 21): the same DAG, per-tier latencies,
tier limits and join as every other executor there, run by LangGraph 1.2, the most used
agent framework, in two ways:

- the Functional API (`@entrypoint`, `@task` futures): each node starts when its own inputs
  are done, in memory, nothing persisted;
- a StateGraph with a SQLite checkpointer: durable (a checkpoint per superstep), and a node
  with several inputs waits for all of them (a waiting edge), so a level of the DAG waits
  for its slowest node (supersteps).

They need the `bench` extra, which scripts/setup installs.
"""

from __future__ import annotations

import asyncio
import operator
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from bench.executors import call_tier, with_join
from core.plan import Plan

JOIN = "__join__"


def available() -> bool:
    try:
        import langgraph.checkpoint.sqlite.aio
        import langgraph.func  # noqa: F401
    except ImportError:
        return False
    return True


def _order(plan: Plan) -> list[str]:
    return [s.id for s in plan.topological_order()] + [JOIN]


def functional_s(
    plan: Plan,
    latency: dict[str, float],
    join_tier: str,
    limits: dict[str, int],
    starts: dict[str, float] | None = None,
) -> float:
    """LangGraph's Functional API: a task per node, started as soon as its inputs are done.
    `starts`, when given, receives when each node began (time.perf_counter)."""
    from langgraph.func import entrypoint, task

    tier, deps = with_join(plan, join_tier)

    async def main() -> None:
        gates = {t: asyncio.Semaphore(n) for t, n in limits.items()}

        @task
        async def node(name: str) -> str:
            if starts is not None:
                starts[name] = time.perf_counter()
            await call_tier(tier[name], latency, gates)
            return name

        @entrypoint()
        async def graph(_: int) -> str:
            done: dict[str, asyncio.Task[str]] = {}

            async def when_ready(name: str) -> str:
                await asyncio.gather(*(done[d] for d in deps[name]))
                return await node(name)

            for name in _order(plan):
                done[name] = asyncio.ensure_future(when_ready(name))
            return await done[JOIN]

        await graph.ainvoke(0)

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


class _Done(TypedDict):
    done: Annotated[list[str], operator.add]


def durable_graph_s(
    plan: Plan,
    latency: dict[str, float],
    join_tier: str,
    limits: dict[str, int],
    starts: dict[str, float] | None = None,
) -> float:
    """A LangGraph StateGraph, a node per subtask and an edge per dependency, checkpointed to
    SQLite after every superstep (timed with the checkpointer's setup: it is the run's)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import START, StateGraph

    tier, deps = with_join(plan, join_tier)

    async def main(db: Path) -> None:
        gates = {t: asyncio.Semaphore(n) for t, n in limits.items()}
        builder = StateGraph(_Done)

        def step(name: str) -> Any:
            async def run(_: _Done) -> dict[str, list[str]]:
                if starts is not None:
                    starts[name] = time.perf_counter()
                await call_tier(tier[name], latency, gates)
                return {"done": [name]}

            return run

        for name in _order(plan):
            builder.add_node(name, step(name))
            if not deps[name]:
                builder.add_edge(START, name)
            elif len(deps[name]) == 1:
                builder.add_edge(deps[name][0], name)
            else:
                builder.add_edge(list(deps[name]), name)  # waits for all of them
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke(
                {"done": []}, {"configurable": {"thread_id": "bench"}, "recursion_limit": 1000}
            )

    with tempfile.TemporaryDirectory(prefix="mission-bench-langgraph-") as folder:
        started = time.perf_counter()
        asyncio.run(main(Path(folder) / "checkpoints.sqlite"))
        return time.perf_counter() - started


def hop_ms(executor: Any, plan: Plan, join_tier: str) -> float:
    """Per-hop overhead on a chain of 0 ms nodes: from the first node's start to the last
    subtask's start, per hop."""
    starts: dict[str, float] = {}
    ids = [s.id for s in plan.topological_order()]
    executor(plan, {t: 0.0 for t in ("fast", join_tier)}, join_tier, {}, starts)
    return (starts[ids[-1]] - starts[ids[0]]) / (len(ids) - 1) * 1000
