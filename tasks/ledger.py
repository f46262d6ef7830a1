"""The ledger of each goal run this process runs: its stop signal, its budget (every model
call is allowed or refused, then charged), its attempt records and its sources.

One ledger per goal run, shared by the flow and its subtask threads; a task finds its goal
run's ledger from its task run context (`current()`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.context import TaskRunContext

from core.artifacts import BUDGET_KEY, AttemptRecord, screenshot_path
from core.budget import Budget, overspent
from core.citations import CitationReport
from core.pricing import Usage
from core.sources import Source, SourceBook, SourceKind, normalise_url
from core.stop import Stop
from tasks import records, run_log


@dataclass
class RunLedger:
    flow_run_id: UUID | None  # None: work outside a goal run, which records nothing
    budget: Budget
    stop: Stop = field(default_factory=Stop)
    sources: SourceBook = field(default_factory=SourceBook)
    home: Path | None = None  # where screenshots of pages are kept (MISSION_HOME)
    _claimed: set[str] = field(default_factory=set)
    _citations: dict[str, CitationReport] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    tokens: int = 0
    cost_usd: float = 0.0
    exceeded: str | None = None  # which limit halted the run, in words
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started_at: dict[str, datetime] = field(default_factory=dict)

    def mark_started(self, step: str, at: datetime | None = None) -> None:
        """When a subtask's (latest) task run started: the outcome table carries it, so the
        finished document has every start even before the server has recorded them."""
        with self._lock:
            self._started_at[step] = at or datetime.now(UTC)

    def started_times(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._started_at)

    def check(self) -> None:
        """Raise GoalStopped if the goal run may not start another model call."""
        self.stop.check()
        with self._lock:
            elapsed = time.monotonic() - self.started
            why = overspent(self.budget, self.tokens, self.cost_usd, elapsed)
        if why is not None:
            self.halt(why)
        self.stop.check()

    def charge(self, usage: Usage) -> None:
        with self._lock:
            self.tokens += usage.total_tokens
            # An unpriced model's calls add no known dollars: only a token budget bounds them.
            self.cost_usd += usage.cost_usd or 0.0
            why = overspent(self.budget, self.tokens, self.cost_usd, 0.0)
        if why is not None:
            self.halt(why)

    def record(self, attempt: AttemptRecord) -> None:
        run_log.attempt(attempt)
        if attempt.citations is not None:
            with self._lock:
                self._citations[attempt.step] = attempt.citations
        if self.flow_run_id is not None:
            records.put(self.flow_run_id, attempt)

    def citations(self) -> list[CitationReport]:
        """Each step's latest citation report."""
        with self._lock:
            return list(self._citations.values())

    def add_source(
        self,
        url: str,
        title: str,
        kind: SourceKind,
        subtask: str,
        text: str = "",
        screenshot: bytes | None = None,
    ) -> Source:
        """A source found or opened by `subtask` (numbered on first sight), recorded with its
        text; a page's first screenshot is kept beside it."""
        before = self.sources.get_by_url(url)
        source = self.sources.add(url, title, kind, subtask, text)
        if self.flow_run_id is None:
            return source
        if before != source:
            records.put(self.flow_run_id, source)
            run_log.source(source)
        if text:
            records.put(self.flow_run_id, records.Snapshot(source, text))
        if screenshot and self.home is not None:
            path = screenshot_path(self.home, self.flow_run_id, source.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(screenshot)
        return source

    def claim_url(self, url: str) -> bool:
        """True for the first browse subtask that asks to open `url` in this goal run: each
        takes a different one of the hits its dependencies found."""
        key = normalise_url(url)
        with self._lock:
            if key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def halt(self, why: str) -> None:
        """The budget is spent: stop the run (once) and say so in an artifact of the run."""
        if self.stop.set(f"halted: budget exceeded ({why})", "halted"):
            self.exceeded = why
            create_markdown_artifact(
                f"Halted: budget exceeded ({why}). Subtasks not yet started will not run.",
                key=BUDGET_KEY,
                description=why,
            )

    def seconds_left(self) -> float | None:
        if self.budget.max_seconds is None:
            return None
        return self.budget.max_seconds - (time.monotonic() - self.started)


_ledgers: dict[UUID, RunLedger] = {}
_lock = threading.Lock()


def open_ledger(flow_run_id: UUID, budget: Budget, home: Path | None = None) -> RunLedger:
    with _lock:
        ledger = _ledgers[flow_run_id] = RunLedger(flow_run_id, budget, home=home)
    return ledger


def close_ledger(flow_run_id: UUID) -> None:
    with _lock:
        _ledgers.pop(flow_run_id, None)


def ledger_of(flow_run_id: UUID) -> RunLedger | None:
    """The ledger of a goal run running in this process, if it is."""
    with _lock:
        return _ledgers.get(flow_run_id)


def current() -> RunLedger:
    """The ledger of the goal run the calling task belongs to; outside one, a ledger of its
    own that neither limits nor records."""
    ctx = TaskRunContext.get()
    flow_run_id = ctx.task_run.flow_run_id if ctx is not None else None
    ledger = ledger_of(flow_run_id) if flow_run_id is not None else None
    return ledger if ledger is not None else RunLedger(None, Budget())
