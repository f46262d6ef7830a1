"""What a goal run tells the Prefect UI: info lines in its task runs' and its flow run's logs
(Prefect's run logger, shipped to the server in batches), for a person inspecting it there:
each attempt's model, tier, tokens, cost and learned line or error, the sources a subtask
opened, the plan, its revisions and the outcome. Outside a run nothing is logged."""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger
from prefect.logging.handlers import PrefectConsoleHandler

from core.artifacts import AttemptRecord
from core.plan import Plan
from core.pricing import cost_text
from core.revision import Replan
from core.sources import Source

Logger = logging.Logger | logging.LoggerAdapter[Any]


def _logger() -> Logger | None:
    if TaskRunContext.get() is None and FlowRunContext.get() is None:
        return None
    log = get_run_logger()
    # `mission up` and `mission run` quiet Prefect's console (PREFECT_LOGGING_LEVEL defaults
    # to WARNING there); the run loggers still ship their info lines to the API.
    _keep_console_quiet(logging.getLogger("prefect").getEffectiveLevel())
    if not log.isEnabledFor(logging.INFO):
        inner = log.logger if isinstance(log, logging.LoggerAdapter) else log
        inner.setLevel(logging.INFO)
    return log


def _keep_console_quiet(level: int) -> None:
    """Raise the root logger's console handlers to `level` (Prefect's): the run loggers'
    info lines propagate to them, and printing each through rich took about 40% of the CPU
    of a task run whose model call takes 0 ms (bench.hop_profile)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and handler.level < level:
            handler.setLevel(level)


def attempt(record: AttemptRecord) -> None:
    """One model call attempt (or a subtask that made none), in its task run's log."""
    log = _logger()
    if log is None:
        return
    what = f"{record.step}: attempt {record.status}"
    if record.model:
        what += f" on {record.model} (tier {record.tier}, {record.provider})"
    if record.input_tokens or record.output_tokens:
        cached = record.cache_read_input_tokens + record.cache_creation_input_tokens
        what += (
            f", {record.input_tokens} input + {record.output_tokens} output tokens"
            + (f" ({cached} cached)" if cached else "")
            + f", {cost_text(record.cost_usd, 6)}"
        )
    if record.learned:
        what += f"; learned: {record.learned}"
    if record.citations is not None and record.citations.total:
        what += f"; citations {record.citations.verified}/{record.citations.total} verified"
    if record.error:
        what += f"; error: {record.error}"
    log.log(logging.INFO if record.status == "ok" else logging.WARNING, what)


def source(found: Source) -> None:
    log = _logger()
    if log is not None:
        log.info("source [%d] (%s) %s: %s", found.id, found.kind, found.title, found.url)


def plan(the_plan: Plan, revision: int = 0) -> None:
    """The plan (or a revision of it), one line per subtask."""
    log = _logger()
    if log is None:
        return
    lines = [
        f"- {s.id} ({s.kind}, tier {s.tier})"
        + (f" after {', '.join(s.depends_on)}" if s.depends_on else "")
        + f": {s.title}"
        for s in the_plan.subtasks
    ]
    head = f"plan revision {revision}" if revision else "plan"
    log.info("%s: %d subtasks\n%s", head, len(the_plan.subtasks), "\n".join(lines))


def replan(entry: Replan) -> None:
    """A replanning point: why, and the revision run or refused."""
    log = _logger()
    if log is None:
        return
    if entry.refused:
        log.warning("revision %d refused (%s): %s", entry.revision, entry.reason, entry.refused)
        return
    replaced = ", ".join(f"{old} -> {new}" for old, new in entry.replaced.items()) or "none"
    log.info(
        "revision %d (%s): added %s; replaced %s",
        entry.revision,
        entry.reason,
        ", ".join(entry.added) or "none",
        replaced,
    )


def outcome(state_name: str, message: str | None) -> None:
    log = _logger()
    if log is not None:
        log.info("outcome: %s: %s", state_name, message or "-")
