"""Streamed output's side channel without a stack: a goal run's writers (tasks/deltas.py)
sending to an API's board (api/deltas.py) through the real socket, and through real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from api.deltas import DeltaBoard, RedisDeltas, listen_on_socket
from core.stream import Delta, delta_socket
from tasks.deltas import THROTTLE_S, DeltaStream, RedisChannel, SocketChannel

REDIS = "redis://127.0.0.1:6379/0"
TEXT = "The quick brown fox jumps over the lazy dog. " * 6


def delta(text: str, end: int, restart: bool = False, subtask: str = "a") -> Delta:
    return Delta(run="r", subtask=subtask, text=text, end=end, restart=restart)


async def collect(board: DeltaBoard, run: str, ended: asyncio.Event) -> list[list[Delta]]:
    batches: list[list[Delta]] = []
    async for batch in board.watch(run, ended):
        batches.append(batch)
    return batches


def write_slowly(
    write: Callable[[str], None], text: str, steps: int, pause_s: float, start: int = 0
) -> None:
    """Write `text` from `start` to its end in `steps` growing prefixes, `pause_s` apart."""
    for i in range(1, steps + 1):
        write(text[: start + (len(text) - start) * i // steps])
        time.sleep(pause_s)


def test_board_keeps_each_part_once_and_waits_out_a_gap() -> None:
    board = DeltaBoard()
    board.add(delta("Hello", 5, restart=True))
    board.add(delta(" world", 11))
    board.add(delta("world", 11))  # sent twice (a second replica's copy): kept once
    board.add(delta("lo wor", 9))  # overlaps what is known: nothing new
    board.add(delta("!", 13))  # one character was never seen: not shown out of place
    board.add(delta("ld!?", 13))  # overlaps the known end: only "!?" is new
    assert board._runs["r"].texts["a"] == "Hello world!?"
    assert "a" not in board._runs["r"].gaps
    board.add(delta("Again", 5, restart=True))  # a new attempt starts over
    assert board._runs["r"].texts["a"] == "Again"


def test_a_late_watcher_first_gets_the_text_so_far_then_the_deltas() -> None:
    async def scenario() -> list[list[Delta]]:
        board = DeltaBoard()
        board.add(delta("Hello", 5, restart=True))
        board.add(delta("other", 5, restart=True, subtask="b"))
        ended = asyncio.Event()
        watching = asyncio.create_task(collect(board, "r", ended))
        await asyncio.sleep(0.01)
        board.add(delta(" there", 11))
        await asyncio.sleep(0.01)
        ended.set()
        return await watching

    batches = asyncio.run(scenario())
    first = {d.subtask: d for d in batches[0]}
    assert first["a"].text == "Hello" and first["a"].restart
    assert first["b"].text == "other" and first["b"].restart
    assert [(d.subtask, d.text, d.restart) for d in batches[1]] == [("a", " there", False)]


def test_a_slow_watcher_gets_what_it_missed_merged_into_one_delta() -> None:
    async def scenario() -> list[list[Delta]]:
        board = DeltaBoard()
        ended = asyncio.Event()
        watching = asyncio.create_task(collect(board, "r", ended))
        await asyncio.sleep(0.01)
        # Three deltas while the watcher does not run: it takes them as one.
        for part, end in [("one ", 4), ("two ", 8), ("three", 13)]:
            board.add(delta(part, end, restart=end == 4))
        await asyncio.sleep(0.01)
        ended.set()
        return await watching

    batches = asyncio.run(scenario())
    assert [(d.text, d.restart) for batch in batches for d in batch] == [("one two three", True)]


def test_writers_reach_the_api_socket_throttled_with_the_whole_text(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[float, Delta]]:
        board = DeltaBoard()
        close = await listen_on_socket(board, delta_socket(tmp_path))
        stream = DeltaStream(SocketChannel(delta_socket(tmp_path)))
        ended = asyncio.Event()
        seen: list[tuple[float, Delta]] = []

        async def watch() -> None:
            async for batch in board.watch("run-1", ended):
                seen.extend((time.monotonic(), d) for d in batch)

        watching = asyncio.create_task(watch())
        await asyncio.sleep(0.02)
        writer = stream.writer("run-1", "a")
        # 30 updates in 0.6 s: 50 a second, five times what may be sent.
        await asyncio.to_thread(write_slowly, writer, TEXT, 30, 0.02)
        writer.close()
        await asyncio.sleep(3 * THROTTLE_S)
        ended.set()
        await watching
        close()
        return seen

    seen = asyncio.run(scenario())
    assert "".join(d.text for _, d in seen) == TEXT
    assert seen[0][1].restart and not any(d.restart for _, d in seen[1:])
    assert 4 <= len(seen) <= 9  # about one per 100 ms of the 0.6 s
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    assert min(gaps) >= THROTTLE_S * 0.8  # never more than 10 a second (timer slack aside)
    assert oct(delta_socket(tmp_path).parent.stat().st_mode & 0o777) == "0o700"


def test_without_an_api_deltas_are_dropped_and_the_writer_never_blocks(tmp_path: Path) -> None:
    stream = DeltaStream(SocketChannel(delta_socket(tmp_path / "nobody")))
    writer = stream.writer("run-1", "a")
    started = time.monotonic()
    write_slowly(writer, TEXT, 10, 0)
    writer.close()
    assert time.monotonic() - started < 0.05


@pytest.mark.slow  # needs the Redis server of the scale-out tests
def test_redis_carries_deltas_to_every_replica_and_a_late_one_reads_the_text_so_far() -> None:
    run = f"run-{uuid.uuid4()}"

    async def scenario() -> tuple[list[Delta], list[Delta]]:
        early = RedisDeltas(REDIS)
        early.start()
        ended = asyncio.Event()
        from_early: list[Delta] = []

        async def watch(replica: RedisDeltas, into: list[Delta]) -> None:
            async for batch in replica.board.watch(run, ended):
                into.extend(batch)

        watching = asyncio.create_task(watch(early, from_early))
        await asyncio.sleep(0.3)  # subscribed
        stream = DeltaStream(RedisChannel(REDIS))
        writer = stream.writer(run, "a")
        half = len(TEXT) // 2
        await asyncio.to_thread(write_slowly, writer, TEXT[:half], 4, 0.12)
        await asyncio.sleep(3 * THROTTLE_S)
        # A replica that starts now has missed the first half: it reads it from Redis.
        late = RedisDeltas(REDIS)
        late.start()
        await asyncio.sleep(0.3)
        from_late: list[Delta] = []
        late_watch = asyncio.create_task(watch(late, from_late))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(write_slowly, writer, TEXT, 4, 0.12, half)
        writer.close()
        await asyncio.sleep(3 * THROTTLE_S)
        ended.set()
        await asyncio.gather(watching, late_watch)
        await early.close()
        await late.close()
        return from_early, from_late

    from_early, from_late = asyncio.run(scenario())
    assert "".join(d.text for d in from_early) == TEXT
    assert from_late[0].restart and from_late[0].text.startswith(TEXT[:20])
    assert "".join(d.text for d in from_late) == TEXT
