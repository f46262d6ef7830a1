"""A plan's forecast cost, with token counts learned from this installation's recent
finished goal runs (their plans and attempt records, read through the Prefect API, cached)."""

from __future__ import annotations

import time
from collections import defaultdict
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import Artifact, StateType
from prefect.client.schemas.sorting import FlowRunSort

from core.artifacts import PLAN_KEY, RECORD_PREFIX, AttemptRecord, PlanRow, parse_rows
from core.forecast import JOIN_KIND, Forecast, TokenRange, forecast_cost, learn_tokens
from core.goal_run import FLOW_NAME
from core.progress import SubtaskProgress
from core.settings import Settings
from services import prefect_reads

RECENT_RUNS = 20  # finished goal runs learned from
CACHE_S = 300.0  # how long what was learned serves before it is read again


def subtask_tokens(artifacts: list[Artifact]) -> dict[str, list[tuple[int, int]]]:
    """(input, output) tokens of each subtask and join that called a model, by kind, over the
    given goal runs' artifacts. A subtask's tokens are those of all its attempts; cache reads
    and writes count as input (an upper bound: they cost less)."""
    kinds: dict[tuple[UUID | None, str], str] = {}
    spent: dict[tuple[UUID | None, str], list[int]] = defaultdict(lambda: [0, 0])
    for artifact in artifacts:
        run = artifact.flow_run_id
        if artifact.key == PLAN_KEY:
            kinds.update(((run, row.id), row.kind) for row in parse_rows(artifact.data, PlanRow))
        elif (artifact.description or "").startswith(RECORD_PREFIX):
            for record in parse_rows(artifact.data, AttemptRecord):
                tokens = spent[(run, record.step)]
                tokens[0] += (
                    record.input_tokens
                    + record.cache_creation_input_tokens
                    + record.cache_read_input_tokens
                )
                tokens[1] += record.output_tokens
    samples: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (run, step), (inp, out) in spent.items():
        kind = JOIN_KIND if step == "join" else kinds.get((run, step))
        if kind is not None and inp + out > 0:
            samples[kind].append((inp, out))
    return dict(samples)


class LearnedTokens:
    """Typical tokens per kind from recent finished goal runs, read at most every CACHE_S."""

    def __init__(self) -> None:
        self._value: dict[str, TokenRange] = {}
        self._read_at: float | None = None

    def forget(self) -> None:
        self._read_at = None

    async def get(self, client: PrefectClient) -> dict[str, TokenRange]:
        if self._read_at is not None and time.monotonic() - self._read_at < CACHE_S:
            return self._value
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=RECENT_RUNS,
        )
        artifacts = (
            await prefect_reads.artifacts_of_runs(client, [r.id for r in runs]) if runs else []
        )
        self._value = learn_tokens(subtask_tokens(artifacts))
        self._read_at = time.monotonic()
        return self._value


learned_tokens = LearnedTokens()


async def forecast_plan(
    client: PrefectClient, subtasks: list[SubtaskProgress], settings: Settings
) -> Forecast:
    """The likely cost of a plan's subtasks that have not ended yet, and of the join."""
    steps = [(s.kind, s.tier) for s in subtasks if s.bucket in ("pending", "running")]
    steps.append((JOIN_KIND, settings.join_tier))
    models = {name: spec.model for name, spec in settings.tiers.items()}
    return forecast_cost(steps, models, await learned_tokens.get(client), settings.prices)
