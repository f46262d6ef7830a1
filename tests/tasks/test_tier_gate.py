"""Tier slots: never more holders than the limit, across threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from tasks.tier_gate import LocalSlots


def _hold(directory: str, limit: int, log: str, workers: int) -> None:
    slots = LocalSlots(Path(directory), limit)

    def work() -> None:
        for _ in range(3):
            with slots.slot():
                started = time.time()
                time.sleep(0.05)
                with open(log, "a") as out:
                    out.write(f"{started} {time.time()}\n")

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _peak(log: Path) -> int:
    events = []
    for line in log.read_text().splitlines():
        start, end = map(float, line.split())
        events += [(start, 1), (end, -1)]
    peak = held = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        held += delta
        peak = max(peak, held)
    return peak


def test_local_slots_hold_the_limit_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "intervals"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_hold, args=(str(tmp_path / "slots"), 2, str(log), 4)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(log.read_text().splitlines()) == 3 * 4 * 3
    assert _peak(log) == 2


def test_a_dead_process_gives_its_slot_back_at_once(tmp_path: Path) -> None:
    directory = tmp_path / "slots"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(target=_hold_forever, args=(str(directory),))
    holder.start()
    slots = LocalSlots(directory, 1)
    deadline = time.time() + 30
    while not (directory / "0.slot").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the child now holds the only slot
    holder.kill()
    holder.join()
    got = threading.Event()

    def take() -> None:
        with slots.slot():
            got.set()

    t = threading.Thread(target=take)
    t.start()
    t.join(10)
    assert got.is_set()


def _hold_forever(directory: str) -> None:
    with LocalSlots(Path(directory), 1).slot():
        time.sleep(600)
