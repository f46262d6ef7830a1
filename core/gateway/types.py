"""The gateway's types: what a model call asks for, what comes back, and who answers it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from core.artifacts import AttemptRecord
from core.pricing import Usage
from core.stop import NEVER, Stop


@dataclass(frozen=True)
class ModelSpec:
    """Which model serves a call, and how."""

    tier: str
    model: str
    temperature: float
    max_tokens: int
    timeout_s: float = 600.0


@dataclass(frozen=True)
class Tool:
    """A forced tool: the model must answer by calling it with input matching `schema`."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    system: str
    prompt: str
    tool: Tool
    images: tuple[bytes, ...] = ()  # PNG screenshots for the vision tier
    cache_system: bool = False  # mark the fixed system prompt for prompt caching
    label: str = ""  # who is asking (planner, a subtask id): shown in errors
    # Streamed output: called with the reply's `output` text so far, each time more of it
    # has arrived (core/stream.py reads it out of the partial tool input). A provider that
    # cannot stream calls it once, with the whole text, before it returns.
    on_text: Callable[[str], None] | None = None


class Reply(BaseModel):
    """What came back: the tool input, the model that produced it, and what it cost."""

    data: dict[str, Any]
    model: str
    usage: Usage


class Provider(Protocol):
    """One adapter per provider (anthropic, simulated); the circuit breaker wraps either.

    `complete` returns the reply, or raises GoalStopped as soon as `stop` is set while the
    request is in flight (the request itself is aborted)."""

    name: str

    def complete(self, spec: ModelSpec, request: ModelRequest, stop: Stop = NEVER) -> Reply: ...


class Ledger(Protocol):
    """Where a goal run's model calls are allowed, charged and recorded (tasks/ledger.py
    keeps one per goal run; outside a goal run nothing is kept)."""

    stop: Stop

    def check(self) -> None:
        """Raise GoalStopped when no further call may start (stopped, or budget spent)."""

    def charge(self, usage: Usage) -> None: ...

    def record(self, attempt: AttemptRecord) -> None: ...


class NoLedger:
    """For calls outside a goal run (`mission plan`): nothing limits or records them."""

    stop = NEVER

    def check(self) -> None:
        return None

    def charge(self, usage: Usage) -> None:
        return None

    def record(self, attempt: AttemptRecord) -> None:
        return None
