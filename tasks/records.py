"""What each model call of a goal run produced and cost, written to Prefect as artifacts.

Writes go through one background thread so a slow server never sits on a subtask's critical
path; `flush()` waits for them (the flow calls it before it returns).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import TaskRunContext
from prefect.events import emit_event
from pydantic import BaseModel, ValidationError

from core.errors import ModelError, ProviderError
from core.gateway import ModelRequest, Reply, get_provider, route
from core.pricing import Usage
from tasks.budget import charge, check_budget

log = logging.getLogger(__name__)
RECORD_PREFIX = "mission record: "
BATCH_S = 0.25


class _Writer:
    """One thread that writes queued rows, gathering those that arrive within BATCH_S into one
    artifact per goal run: a burst of finishing subtasks costs one write, not one each, and
    the writes stay off the subtasks' threads (each write measured ~7 ms of a 2-core
    machine's time per subtask when done one by one)."""

    def __init__(self) -> None:
        # None asks the writer to stop gathering and write what it has (see flush).
        self._queue: queue.Queue[tuple[UUID, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, flow_run_id: UUID, row: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="mission-records", daemon=True
                )
                self._thread.start()
        self._queue.put((flow_run_id, row))

    def flush(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._queue.join()

    def _run(self) -> None:
        with get_client(sync_client=True) as client:
            while True:
                batch = [self._queue.get()]
                deadline = time.monotonic() + BATCH_S
                while batch[-1] is not None and (left := deadline - time.monotonic()) > 0:
                    try:
                        batch.append(self._queue.get(timeout=left))
                    except queue.Empty:
                        break
                by_run: dict[UUID, list[dict[str, Any]]] = {}
                for item in batch:
                    if item is not None:
                        by_run.setdefault(item[0], []).append(item[1])
                try:
                    for flow_run_id, rows in by_run.items():
                        steps = ", ".join(f"{r['step']} ({r['status']})" for r in rows)
                        client.create_artifact(
                            ArtifactCreate(
                                type="table",
                                data=json.dumps(rows),
                                description=f"{RECORD_PREFIX}{steps}",
                                flow_run_id=flow_run_id,
                            )
                        )
                        # Tell watchers (they follow the goal run's events) to read again.
                        emit_event(
                            "mission.goal-run.recorded",
                            resource={"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"},
                            payload={"steps": [r["step"] for r in rows]},
                        )
                except Exception:  # a lost record must not fail the goal; say so in the log
                    log.exception("could not write a progress record to Prefect")
                finally:
                    for _ in batch:
                        self._queue.task_done()


_writer = _Writer()


def record_attempt(
    step: str,
    tier: str,
    status: str,
    model: str | None,
    usage: Usage | None,
    learned: str | None = None,
    error: str | None = None,
) -> None:
    """Record one model call attempt (planner, subtask or join; failed ones included) of the
    current task run, as a row of a table artifact of the goal run. Nothing outside a run."""
    ctx = TaskRunContext.get()
    if ctx is None or ctx.task_run.flow_run_id is None:
        return
    u = usage or Usage()
    row = {
        "step": step,
        "provider": get_provider().name,
        "tier": tier,
        "status": status,
        "model": model,
        "learned": learned,
        "error": error,
        "input_tokens": u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
        "cost_usd": u.cost_usd,
        "at": datetime.now(UTC).isoformat(),
    }
    _writer.put(ctx.task_run.flow_run_id, row)


def flush() -> None:
    """Wait until every queued record has reached Prefect."""
    _writer.flush()


def complete_recorded(
    step: str,
    tier: str,
    request: ModelRequest,
    temperature: float | None = None,
    shape: type[BaseModel] | None = None,
) -> Reply:
    """Call the model serving `tier` and record the attempt, a rejected reply's cost included.

    With `shape`, the tool input must validate against it or the reply counts as rejected.
    """
    spec = route(tier, temperature)
    check_budget()
    try:
        reply = get_provider().complete(spec, request)
    except ModelError as exc:
        usage = Usage.model_validate(exc.usage) if exc.usage else None
        if usage is not None:
            charge(usage)
        record_attempt(step, tier, "rejected", spec.model, usage, error=exc.message)
        raise
    except ProviderError as exc:
        record_attempt(step, tier, "error", spec.model, None, error=exc.message)
        raise
    charge(reply.usage)
    if shape is not None:
        try:
            shape.model_validate(reply.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "input"
            message = f"{step}: {reply.model} answered in the wrong shape ({where}: {first['msg']})"
            record_attempt(step, tier, "rejected", spec.model, reply.usage, error=message)
            raise ModelError(message, reply.usage.model_dump()) from None
    learned = reply.data.get("learned") if isinstance(reply.data.get("learned"), str) else None
    record_attempt(step, tier, "ok", reply.model, reply.usage, learned=learned)
    return reply
