"""Baselines for the makespan benchmark: a waves executor, an ideal executor, and the bounds.

All of them run the same plan with the same per-tier latencies as the simulated provider, so
the only difference between them and Mission Control is orchestration.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from typing import Any

from core.plan import Plan

TIERS = ("fast", "vision", "structured", "deep", "writer")
TIER_WEIGHTS = (0.40, 0.20, 0.15, 0.15, 0.10)


def random_dag(n: int, seed: int, layers: int = 8) -> dict[str, Any]:
    """A layered random DAG of `n` subtasks (deterministic for a seed), as a plan file."""
    rng = random.Random(seed)
    layer_of = sorted(rng.randrange(layers) for _ in range(n))
    layer_of[0] = 0
    subtasks: list[dict[str, Any]] = []
    for i, layer in enumerate(layer_of):
        earlier = [j for j in range(i) if layer_of[j] < layer]
        recent = [j for j in earlier if layer_of[j] == layer - 1] or earlier
        deps: set[int] = set()
        if recent:
            deps.add(rng.choice(recent))
            for _ in range(rng.randrange(3)):
                deps.add(rng.choice(earlier))
        subtasks.append(
            {
                "id": f"s{i:02d}",
                "title": f"Subtask {i}",
                "instruction": f"Benchmark subtask {i}.",
                "kind": "extract",
                "tier": rng.choices(TIERS, TIER_WEIGHTS)[0],
                "depends_on": [f"s{j:02d}" for j in sorted(deps)],
            }
        )
    return {"goal": f"benchmark DAG of {n} subtasks (seed {seed})", "subtasks": subtasks}


def chain(n: int) -> dict[str, Any]:
    """A chain of `n` subtasks, each depending on the one before, as a plan file."""
    return {
        "goal": f"benchmark chain of {n} subtasks",
        "subtasks": [
            {
                "id": f"c{i:02d}",
                "title": f"Link {i}",
                "instruction": f"Benchmark link {i}.",
                "kind": "extract",
                "tier": "fast",
                "depends_on": [f"c{i - 1:02d}"] if i else [],
            }
            for i in range(n)
        ],
    }


def with_join(plan: Plan, join_tier: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Tier and dependencies of every node, plus the join that waits for all of them."""
    tier = {s.id: s.tier for s in plan.subtasks}
    deps = {s.id: s.depends_on for s in plan.subtasks}
    tier["__join__"] = join_tier
    deps["__join__"] = tuple(s.id for s in plan.subtasks)
    return tier, deps


def critical_path_s(plan: Plan, latency: dict[str, float], join_tier: str) -> float:
    """The longest chain of latencies: no executor can finish sooner."""
    tier, deps = with_join(plan, join_tier)
    finish: dict[str, float] = {}
    for node in [s.id for s in plan.topological_order()] + ["__join__"]:
        finish[node] = max((finish[d] for d in deps[node]), default=0.0) + latency[tier[node]]
    return finish["__join__"]


def list_schedule_s(
    plan: Plan, latency: dict[str, float], join_tier: str, limits: dict[str, int]
) -> float:
    """Greedy list scheduling with per-tier slots and zero overhead (first ready, first served)."""
    tier, deps = with_join(plan, join_tier)
    waiting = {n: set(d) for n, d in deps.items()}
    free = {t: limits.get(t, 10**9) for t in set(tier.values())}
    queue: dict[str, list[tuple[float, int, str]]] = {t: [] for t in free}
    order = 0
    events: list[tuple[float, str]] = []
    now = 0.0

    def ready(node: str, at: float) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue[tier[node]], (at, order, node))

    def start_what_fits(at: float) -> None:
        for t, q in queue.items():
            while q and free[t] > 0:
                _, _, node = heapq.heappop(q)
                free[t] -= 1
                heapq.heappush(events, (at + latency[t], node))

    for node, d in waiting.items():
        if not d:
            ready(node, 0.0)
    start_what_fits(0.0)
    while events:
        now, done = heapq.heappop(events)
        free[tier[done]] += 1
        for node, d in waiting.items():
            if done in d:
                d.discard(done)
                if not d:
                    ready(node, now)
        start_what_fits(now)
    return now


async def call_tier(
    tier: str, latency: dict[str, float], gates: dict[str, asyncio.Semaphore]
) -> None:
    gate = gates.get(tier)
    if gate is None:
        await asyncio.sleep(latency[tier])
        return
    async with gate:
        await asyncio.sleep(latency[tier])


def ideal_s(plan: Plan, latency: dict[str, float], join_tier: str, limits: dict[str, int]) -> float:
    """A dependency-driven asyncio executor: each node starts when its own inputs are done."""
    tier, deps = with_join(plan, join_tier)

    async def main() -> None:
        gates = {t: asyncio.Semaphore(n) for t, n in limits.items()}
        done: dict[str, asyncio.Task[None]] = {}

        async def node(name: str) -> None:
            await asyncio.gather(*(done[d] for d in deps[name]))
            await call_tier(tier[name], latency, gates)

        for name in [s.id for s in plan.topological_order()] + ["__join__"]:
            done[name] = asyncio.create_task(node(name))
        await done["__join__"]

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def waves_s(plan: Plan, latency: dict[str, float], join_tier: str, limits: dict[str, int]) -> float:
    """The seed's executor: run each topological level together, wait for all of it, go on."""
    tier, deps = with_join(plan, join_tier)
    level: dict[str, int] = {}
    for name in [s.id for s in plan.topological_order()] + ["__join__"]:
        level[name] = 1 + max((level[d] for d in deps[name]), default=-1)

    async def main() -> None:
        gates = {t: asyncio.Semaphore(n) for t, n in limits.items()}
        for wave in range(max(level.values()) + 1):
            await asyncio.gather(
                *(call_tier(tier[n], latency, gates) for n, lv in level.items() if lv == wave)
            )

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started
