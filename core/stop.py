"""A goal run's stop signal: set once, when a person cancels the run (or rejects its plan),
when its budget is spent, or at Ctrl-C in `mission run`. From then on nothing new starts: no
subtask, no model request, no page; what is in flight is aborted through callbacks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from core.errors import MissionError

StopKind = Literal["cancelled", "halted"]


class GoalStopped(MissionError):
    """The goal run was stopped: the work that raised this did not (or not fully) happen."""


class Stop:
    """Thread-safe; the first `set` wins (its reason and kind are the run's)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._next = 0
        self.reason = ""
        self.kind: StopKind = "cancelled"

    def set(self, reason: str, kind: StopKind = "cancelled") -> bool:
        """Stop the run; False when it was already stopped (nothing changes then)."""
        with self._lock:
            if self._event.is_set():
                return False
            self.reason, self.kind = reason, kind
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()
        return True

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the run is stopped or `timeout` passes; True if it was stopped."""
        return self._event.wait(timeout)

    def check(self) -> None:
        """Raise GoalStopped once the run is stopped."""
        if self._event.is_set():
            raise GoalStopped(self.reason)

    def on_stop(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback` when the run stops (at once if it has); returns a function that
        forgets it (call it when the work it would abort is done)."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def forget() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return forget
        callback()
        return lambda: None


class _Never(Stop):
    """For work outside a goal run (`mission plan`): nothing ever stops it."""

    def set(self, reason: str, kind: StopKind = "cancelled") -> bool:
        return False


NEVER: Stop = _Never()
