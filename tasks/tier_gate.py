"""Per-tier concurrency and tier tags, without server round trips on a subtask's critical path.

Each tier with a limit has a Prefect global concurrency limit named `tier:<name>` (created or
updated from settings, idempotently). Prefect's own tag limits make every tagged task ask the
server for a lease and poll it every ~0.5 s while the limit is full; on the SQLite server
that puts seconds of orchestration on the critical path. Here a process instead leases slots
from the same limit only when it needs more than it holds, and hands a slot that a subtask
releases straight to the next waiting subtask of that tier in the process (first come, first
served), without a server round trip. A slot nobody here is waiting for goes back to Prefect
after `LINGER_S`.

Tier tags: every subtask task run carries the tag `tier:<name>`, and Prefect's task engine asks
the server for a tag lease for every tagged task run. Prefect caches a "no limit on these tags"
answer for 5 s; each miss is a write request that stalled ~2 s on the SQLite server under load
(see docs/benchmarks.md). `tier_tags_without_leases` checks once per goal run (a read, which
does not stall) that no tag limit exists for the tier tags, and keeps that answer fresh in
Prefect's cache while the run executes. If an operator has put a tag limit on a tier tag, the
answer is not cached and Prefect enforces that limit as usual.

Exact: a subtask calls a model only while holding a slot, and every slot held was granted by
Prefect, which never grants more than the limit across all processes. Tight: inside a goal
run, a freed slot reaches the next ready subtask in microseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency import services as prefect_concurrency_services
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

LINGER_S = 1.0
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


class TierGate:
    """The slots of one tier's Prefect limit that this process holds."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self._cond = threading.Condition()
        self._idle = 0  # slots held from Prefect and not in use
        self._waiting = 0  # subtasks here waiting for a slot
        self._requested = 0  # leases asked of Prefect and not yet granted
        self._freed_at = 0.0
        self._error: BaseException | None = None

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._idle == 0:
                    if self._error is not None:
                        error, self._error = self._error, None
                        raise error
                    if self._requested < self._waiting:
                        self._requested += 1
                        threading.Thread(
                            target=self._hold_one_slot, name=f"lease-{self.tier}", daemon=True
                        ).start()
                    self._cond.wait()
                self._idle -= 1
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            with self._cond:
                self._idle += 1
                self._freed_at = time.monotonic()
                self._cond.notify_all()

    def _hold_one_slot(self) -> None:
        granted = False
        try:
            lease = concurrency(
                limit_name(self.tier), occupy=1, lease_duration=LEASE_S, strict=True
            )
            with lease, self._cond:
                granted = True
                self._requested -= 1
                self._idle += 1
                self._cond.notify_all()
                while not (
                    self._idle > 0
                    and self._waiting == 0
                    and time.monotonic() - self._freed_at >= LINGER_S
                ):
                    self._cond.wait(timeout=LINGER_S / 4)
                self._idle -= 1
        except BaseException as exc:  # handed to a waiting subtask, which fails with it
            if granted:  # the slot was used; only giving it back failed, and its lease expires
                return
            with self._cond:
                self._requested -= 1
                self._error = exc
                self._cond.notify_all()


_gates: dict[str, TierGate] = {}
_gates_lock = threading.Lock()


@contextmanager
def tier_slot(tier: str, limited: bool) -> Iterator[None]:
    """Hold one slot of `tier` for the duration of the block (no-op for unlimited tiers)."""
    if not limited:
        yield
        return
    with _gates_lock:
        gate = _gates.setdefault(tier, TierGate(tier))
    with gate.slot():
        yield


@contextmanager
def tier_tags_without_leases(tiers: set[str]) -> Iterator[None]:
    """Keep Prefect's "no tag limit" answer for `tier:<name>` tags fresh during the block."""
    with get_client(sync_client=True) as client:
        limitless = []
        for tier in sorted(tiers):
            try:
                client.read_global_concurrency_limit_by_name(f"tag:tier:{tier}")
            except ObjectNotFound:
                limitless.append(frozenset({f"tag:tier:{tier}"}))
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
