"""Streamed output in the API: the text so far of each subtask being written, and its deltas
for the event streams that watch its goal run.

The goal runs send deltas on a side channel (tasks/deltas.py): datagrams to this process's
socket on the embedded stack, or Redis pub/sub with `MISSION_REDIS_URL`, where several API
replicas each hear every delta and read the text so far from Redis for a goal run they
start watching late. Nothing here is written to the Prefect database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from core.stream import DELTA_TTL_S, REDIS_CHANNEL, Delta, private_dir, redis_text_key

log = logging.getLogger(__name__)
MAX_DATAGRAM = 65536


@dataclass
class _Run:
    texts: dict[str, str] = field(default_factory=dict)
    gaps: set[str] = field(default_factory=set)  # subtasks whose start this board missed
    watchers: set[_Watcher] = field(default_factory=set)
    touched: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Watcher:
    """What one event stream has yet to send: the text appended per subtask since it last
    sent, merged (a slow client gets one delta per subtask, not a backlog)."""

    pending: dict[str, Delta] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, delta: Delta) -> None:
        held = self.pending.get(delta.subtask)
        if held is not None and not delta.restart:
            delta = held.model_copy(update={"text": held.text + delta.text, "end": delta.end})
        self.pending[delta.subtask] = delta
        self.ready.set()

    def take(self) -> list[Delta]:
        taken = list(self.pending.values())
        self.pending.clear()
        self.ready.clear()
        return taken


class DeltaBoard:
    """Every goal run's text so far, in this process, fed by one of the side channels."""

    def __init__(self, seed: Callable[[str], Awaitable[dict[str, str]]] | None = None) -> None:
        self._runs: dict[str, _Run] = {}
        self._seed = seed  # reads a goal run's text so far from elsewhere (Redis)

    def add(self, delta: Delta) -> None:
        """Take a delta; a part this board has already is not counted twice, and one that
        follows text this board never saw (it started listening late) waits for a seed."""
        run = self._runs.get(delta.run)
        if run is None:
            self._forget_old()
            run = self._runs[delta.run] = _Run()
        run.touched = time.monotonic()
        known = run.texts.get(delta.subtask, "")
        if delta.restart:
            text, shown = delta.text, delta
            run.gaps.discard(delta.subtask)
        elif delta.end <= len(known):
            return
        elif len(known) + len(delta.text) < delta.end:
            run.gaps.add(delta.subtask)
            return
        else:
            appended = delta.text[len(delta.text) - (delta.end - len(known)) :]
            text = known + appended
            run.gaps.discard(delta.subtask)
            shown = delta.model_copy(update={"text": appended})
        run.texts[delta.subtask] = text
        for watcher in run.watchers:
            watcher.offer(shown)

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - DELTA_TTL_S
        for key in [k for k, r in self._runs.items() if r.touched < cutoff and not r.watchers]:
            del self._runs[key]

    async def watch(self, run_id: str, ended: asyncio.Event) -> AsyncIterator[list[Delta]]:
        """The text so far of each subtask (one delta each, marked `restart`), then the
        deltas as they come, in batches, until `ended` is set."""
        run = self._runs.get(run_id)
        if self._seed is not None and (run is None or run.gaps):
            with contextlib.suppress(Exception):  # no text so far, then: deltas still come
                for subtask, text in (await self._seed(run_id)).items():
                    known = (
                        self._runs[run_id].texts.get(subtask, "") if run_id in self._runs else ""
                    )
                    if len(text) > len(known):
                        self.add(
                            Delta(
                                run=run_id, subtask=subtask, text=text, end=len(text), restart=True
                            )
                        )
            run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _Run()
        watcher = _Watcher()
        for subtask, text in run.texts.items():
            watcher.offer(
                Delta(run=run_id, subtask=subtask, text=text, end=len(text), restart=True)
            )
        run.watchers.add(watcher)
        try:
            while not ended.is_set():
                if watcher.pending:
                    yield watcher.take()
                    continue
                done = asyncio.create_task(ended.wait())
                ready = asyncio.create_task(watcher.ready.wait())
                await asyncio.wait({done, ready}, return_when=asyncio.FIRST_COMPLETED)
                done.cancel()
                ready.cancel()
        finally:
            run.watchers.discard(watcher)


def _parsed(raw: bytes | str) -> Delta | None:
    try:
        return Delta.model_validate_json(raw)
    except ValidationError:
        log.warning("ignored a malformed delta")
        return None


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, board: DeltaBoard) -> None:
        self._board = board

    def datagram_received(self, data: bytes, addr: object) -> None:
        if (delta := _parsed(data)) is not None:
            self._board.add(delta)


async def listen_on_socket(board: DeltaBoard, path: Path) -> Callable[[], None]:
    """Take deltas sent to `path` (the embedded stack); returns what closes it."""
    private_dir(path.parent)
    path.unlink(missing_ok=True)  # a socket left by an API that did not stop cleanly
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(board), sock=sock)

    def close() -> None:
        transport.close()
        path.unlink(missing_ok=True)

    return close


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisDeltas:
    """The scale-out side channel: every delta published by any worker, and the text so far
    of a goal run from its hash."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(url)
        self.board = DeltaBoard(seed=self.text_so_far)
        self._task: asyncio.Task[None] | None = None

    async def text_so_far(self, run_id: str) -> dict[str, str]:
        found = await self._redis.hgetall(redis_text_key(run_id))
        return {_text(k): _text(v) for k, v in found.items()}

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(REDIS_CHANNEL)
                    async for message in pubsub.listen():
                        delta = _parsed(message["data"]) if message["type"] == "message" else None
                        if delta is not None:
                            self.board.add(delta)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: streaming pauses, then resumes
                log.warning("lost the Redis channel of streamed output: %s", exc)
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()
