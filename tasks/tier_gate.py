"""Per-tier concurrency and tier tags, without server round trips on a subtask's critical path.

Every limited tier has a Prefect global concurrency limit named `tier:<name>`, created or
updated from settings at the start of each goal run (idempotent), so the limits in force are
visible and editable in the Prefect UI. A subtask calls its model only while holding one slot
of its tier, from one of two gates (`MISSION_TIER_GATE`):

- `local` (default, for the embedded single-machine stack): slot files under
  `MISSION_HOME/tier-slots/<tier>/`, held with `flock`. Exact across every process on the
  machine (goal-run processes, CLI runs); the kernel frees a dead process's slot at once;
  a freed slot reaches the next waiting subtask of the process without any server call (one
  held by another process is looked for again every 25 ms). A stopped goal run's subtasks
  stop waiting.
- `prefect` (for the scale-out stack on PostgreSQL): one lease per subtask from the Prefect
  limit itself (exact across machines). Every lease is a server round trip and a waiting
  subtask polls for its slot, so the 50-subtask DAG with limits takes longer this way than
  with the local gate (docs/benchmarks.md), which is why it is not the default there.

Tier tags: every subtask task run carries the tag `tier:<name>`, and Prefect's task engine asks
the server for a tag lease for every tagged task run, the same round trip. Prefect
caches a "no limit on these tags" answer for 5 s; `tier_tags_without_leases` checks once per
goal run (one read) that no tag limit exists for the tier tags and keeps
that answer fresh while the run executes, and the engine reads it in the task run's own
thread (not on Prefect's event loop thread: three thread hand-offs per subtask). If an
operator has put a tag limit on a tier tag, nothing is cached and Prefect enforces that limit
as usual.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from core.prefect_compat import remember_no_tag_limits
from core.stop import NEVER, Stop
from core.tier_limits import limit_name

LEASE_S = 60.0
STOP_CHECK_S = 0.1
CROSS_PROCESS_POLL_S = 0.025


class LocalSlots:
    """`limit` slot files for one tier; a holder keeps one locked while it calls the model."""

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._paths = [directory / f"{i}.slot" for i in range(limit)]
        # Subtasks of this process queue here first, so one that gets past always finds a
        # free file unless another process holds it.
        self._local = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self, stop: Stop = NEVER) -> Iterator[None]:
        """Hold a slot for the block; GoalStopped as soon as `stop` is set while waiting."""
        # A freed slot wakes the next waiter of this process at once; the timeout only
        # bounds how long a stopped goal run's subtask goes on waiting.
        while not self._local.acquire(timeout=STOP_CHECK_S):
            stop.check()
        try:
            fd = self._take(stop)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            self._local.release()

    def _take(self, stop: Stop) -> int:
        start = random.randrange(len(self._paths))
        while True:
            for path in self._paths[start:] + self._paths[:start]:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
            # Every slot is held by other processes (other goal runs): look again shortly.
            if stop.wait(CROSS_PROCESS_POLL_S):
                stop.check()


_local_slots: dict[tuple[Path, int], LocalSlots] = {}
_local_lock = threading.Lock()


@contextmanager
def tier_slot(
    tier: str, limit: int | None, gate: str, home: Path, stop: Stop = NEVER
) -> Iterator[None]:
    """Hold one slot of `tier` for the duration of the block (no-op for unlimited tiers);
    a stopped goal run stops waiting for one (GoalStopped)."""
    if limit is None:
        yield
    elif gate == "prefect":
        with concurrency(limit_name(tier), occupy=1, lease_duration=LEASE_S, strict=True):
            yield
    else:
        key = (home / "tier-slots" / tier, limit)
        with _local_lock:
            slots = _local_slots.get(key) or _local_slots.setdefault(key, LocalSlots(*key))
        with slots.slot(stop):
            yield


class TagLimits:
    """The names of the server's concurrency limits, read in a thread of its own as the goal
    run starts, so that the read overlaps the run's first steps (its cap check, its plan)
    instead of coming between them and its first subtask."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="tag-limits", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                limits = client.read_global_concurrency_limits(limit=200)
            self._names = {limit.name for limit in limits}
        except BaseException as exc:  # raised in the flow's thread, by names()
            self._error = exc

    def names(self) -> set[str]:
        self._reader.join()
        if self._error is not None:
            raise self._error
        return self._names


@contextmanager
def tier_tags_without_leases(tiers: set[str], limits: TagLimits) -> Iterator[None]:
    """Keep Prefect's "no tag limit" answer for `tier:<name>` tags fresh during the block."""
    existing = limits.names()
    limitless = [
        frozenset({f"tag:tier:{tier}"}) for tier in tiers if f"tag:tier:{tier}" not in existing
    ]
    done = threading.Event()

    def keep_fresh() -> None:
        while True:
            remember_no_tag_limits(limitless)
            if done.wait(1.0):
                return

    keeper = threading.Thread(target=keep_fresh, name="tier-tags", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
