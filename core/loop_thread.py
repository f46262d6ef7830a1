"""An asyncio event loop in a daemon thread, for code that runs in threads (Prefect's task
runner gives each subtask one) but does its I/O with asyncio so that it can be aborted: a
model request is cancelled at once when its goal run stops, which closes its connection."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from core.stop import GoalStopped, Stop

T = TypeVar("T")


class LoopThread:
    """Started on first use, and anew in a forked child (which inherits the attributes but
    not the thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self.name, daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], stop: Stop) -> T:
        """Run `coroutine` on the loop and wait for it; when `stop` is set first, it is
        cancelled and GoalStopped raised at once."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop())
        forget = stop.on_stop(future.cancel)  # cancels the task on the loop, too
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise GoalStopped(stop.reason or "stopped") from None
        finally:
            forget()
