"""Per-tier concurrency and tier tags, without server round trips on a subtask's critical path.

Every limited tier has a Prefect global concurrency limit named `tier:<name>`, created or
updated from settings at the start of each goal run (idempotent), so the limits in force are
visible and editable in the Prefect UI. A subtask calls its model only while holding one slot
of its tier, from one of two gates (`MISSION_TIER_GATE`):

- `local` (default, for the embedded single-machine stack): slot files under
  `MISSION_HOME/tier-slots/<tier>/`, held with `flock`. Exact across every process on the
  machine (runner subprocesses, CLI runs); the kernel frees a dead process's slot at once;
  a freed slot reaches the next waiting subtask of the process without any server call.
- `prefect` (for the scale-out stack on PostgreSQL): one lease per subtask from the Prefect
  limit itself (exact across machines). Every lease is a server round trip and a waiting
  subtask polls for its slot: the 50-subtask DAG with limits takes 10.4 s this way and 7.0 s
  with the local gate (docs/benchmarks.md), which is why it is not the default there.

Tier tags: every subtask task run carries the tag `tier:<name>`, and Prefect's task engine asks
the server for a tag lease for every tagged task run, the same round trip. Prefect
caches a "no limit on these tags" answer for 5 s; `tier_tags_without_leases` checks once per
goal run (one read) that no tag limit exists for the tier tags and keeps
that answer fresh while the run executes. If an operator has put a tag limit on a tier tag,
nothing is cached and Prefect enforces that limit as usual.
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
from prefect.concurrency import services as prefect_concurrency_services
from prefect.concurrency.sync import concurrency

LEASE_S = 60.0


def limit_name(tier: str) -> str:
    return f"tier:{tier}"


def ensure_tier_limits(limits: dict[str, int]) -> None:
    """Create or update the Prefect limit of every limited tier (safe to repeat)."""
    if not limits:
        return
    with get_client(sync_client=True) as client:
        for tier, limit in limits.items():
            client.upsert_global_concurrency_limit_by_name(limit_name(tier), limit)


class LocalSlots:
    """`limit` slot files for one tier; a holder keeps one locked while it calls the model."""

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._paths = [directory / f"{i}.slot" for i in range(limit)]
        # Subtasks of this process queue here first, so one that gets past always finds a
        # free file unless another process holds it.
        self._local = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._local:
            fd = self._take()
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _take(self) -> int:
        start = random.randrange(len(self._paths))
        for path in self._paths[start:] + self._paths[:start]:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        # Every slot is held by other processes: wait for one of them.
        fd = os.open(self._paths[start], os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd


_local_slots: dict[tuple[Path, int], LocalSlots] = {}
_local_lock = threading.Lock()


@contextmanager
def tier_slot(tier: str, limit: int | None, gate: str, home: Path) -> Iterator[None]:
    """Hold one slot of `tier` for the duration of the block (no-op for unlimited tiers)."""
    if limit is None:
        yield
    elif gate == "prefect":
        with concurrency(limit_name(tier), occupy=1, lease_duration=LEASE_S, strict=True):
            yield
    else:
        key = (home / "tier-slots" / tier, limit)
        with _local_lock:
            slots = _local_slots.get(key) or _local_slots.setdefault(key, LocalSlots(*key))
        with slots.slot():
            yield


@contextmanager
def tier_tags_without_leases(tiers: set[str]) -> Iterator[None]:
    """Keep Prefect's "no tag limit" answer for `tier:<name>` tags fresh during the block."""
    with get_client(sync_client=True) as client:
        existing = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
    limitless = [
        frozenset({f"tag:tier:{tier}"}) for tier in tiers if f"tag:tier:{tier}" not in existing
    ]
    done = threading.Event()

    def keep_fresh() -> None:
        while True:
            with prefect_concurrency_services._cache_lock:
                for key in limitless:
                    prefect_concurrency_services._no_limits_cache[key] = True
            if done.wait(1.0):
                return

    keeper = threading.Thread(target=keep_fresh, name="tier-tags", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
