"""Streamed output leaves the goal run here: each subtask's text while its model writes it,
sent to whoever shows it, at most 10 times a second per subtask.

Deltas never touch the Prefect database (its events and artifacts are writes; a delta is
not). They take a side channel: with `MISSION_REDIS_URL` (the scale-out topology, workers on
other machines), Redis pub/sub, and the text so far in a Redis hash for an API replica that
starts watching late; otherwise a datagram to the socket of the `mission up` API on this
machine (`MISSION_DELTA_SOCKET`, which `mission up` gives its runner). In-process
listeners (`mission run`'s live view) get them too. Sending is best effort and never slows a
subtask: one sender thread per process does it, and when no API listens the deltas are
dropped (the finished document carries the whole output anyway).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.settings import Settings
from core.stream import DELTA_TTL_S, REDIS_CHANNEL, Delta, delta_socket, redis_text_key

THROTTLE_S = 0.1  # at most 10 deltas a second per subtask
log = logging.getLogger(__name__)


class Channel(Protocol):
    def send(self, deltas: list[tuple[Delta, str]]) -> None:
        """Send deltas (each with its subtask's whole text so far); never raises."""


class SocketChannel:
    """Datagrams to the API of `mission up` on this machine; dropped when it is not there."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def send(self, deltas: list[tuple[Delta, str]]) -> None:
        for delta, _ in deltas:
            try:
                self._socket.sendto(delta.model_dump_json().encode(), self._path)
            except OSError:  # no API listening, or its queue is full: the text waits for the end
                return


class RedisChannel:
    """Redis pub/sub for the API replicas, and the text so far in a hash for late readers."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._failing = False

    def send(self, deltas: list[tuple[Delta, str]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for delta, whole in deltas:
            key = redis_text_key(delta.run)
            pipe.hset(key, delta.subtask, whole)
            pipe.expire(key, DELTA_TTL_S)
            pipe.publish(REDIS_CHANNEL, delta.model_dump_json())
        try:
            pipe.execute()
            self._failing = False
        except Exception as exc:  # redis is away: streaming pauses, the goal run goes on
            if not self._failing:
                log.warning("cannot send streamed output to Redis: %s", exc)
            self._failing = True


@dataclass
class _Text:
    """One attempt's text of one subtask: what arrived, what was sent, and when."""

    run: str
    subtask: str
    latest: str = ""
    sent: str = ""
    restart: bool = True  # the first delta of an attempt starts its text again
    sent_at: float = 0.0
    closed: bool = False

    def due(self, now: float) -> float | None:
        """When this text should be sent next (None: nothing new to send)."""
        if self.latest == self.sent and not (self.restart and self.latest):
            return None
        return max(now, self.sent_at + THROTTLE_S)

    def take(self, now: float) -> tuple[Delta, str]:
        whole = self.latest
        if self.restart or not whole.startswith(self.sent):
            delta = Delta(
                run=self.run, subtask=self.subtask, text=whole, end=len(whole), restart=True
            )
        else:
            appended = whole[len(self.sent) :]
            delta = Delta(run=self.run, subtask=self.subtask, text=appended, end=len(whole))
        self.sent, self.restart, self.sent_at = whole, False, now
        return delta, whole


@dataclass
class DeltaStream:
    """The deltas of this process's goal runs, sent by one thread as they fall due."""

    channel: Channel | None
    listeners: list[Callable[[Delta], None]] = field(default_factory=list)
    _texts: list[_Text] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    def writer(self, run: str, subtask: str) -> Writer:
        """A callable for `ModelRequest.on_text` for one attempt of one subtask."""
        text = _Text(run, subtask)
        with self._changed:
            self._texts.append(text)
            if self._thread is None:
                self._thread = threading.Thread(target=self._send, name="deltas", daemon=True)
                self._thread.start()
        return Writer(self, text)

    def _update(self, text: _Text, latest: str | None = None, close: bool = False) -> None:
        with self._changed:
            if latest is not None:
                text.latest = latest
            text.closed = text.closed or close
            self._changed.notify()

    def _send(self) -> None:
        while True:
            with self._changed:
                batch: list[tuple[Delta, str]] = []
                while not batch:
                    now = time.monotonic()
                    due = [(t, t.due(now)) for t in self._texts]
                    batch = [t.take(now) for t, at in due if at is not None and at <= now]
                    self._texts = [t for t, at in due if not (t.closed and at is None)]
                    if not batch:
                        waits = [at - now for _, at in due if at is not None]
                        self._changed.wait(min(waits) if waits else None)
            if self.channel is not None:
                self.channel.send(batch)
            for listener in self.listeners:
                for delta, _ in batch:
                    with contextlib.suppress(Exception):
                        listener(delta)


@dataclass
class Writer:
    stream: DeltaStream
    text: _Text

    def __call__(self, text_so_far: str) -> None:
        self.stream._update(self.text, latest=text_so_far)

    def close(self) -> None:
        """The attempt is over: what is left is sent when due, then the text is forgotten."""
        self.stream._update(self.text, close=True)


_streams: dict[tuple[str, int], DeltaStream] = {}
_lock = threading.Lock()


def deltas(settings: Settings) -> DeltaStream:
    """This process's stream of deltas, on the channel the settings choose."""
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else ""
    socket_path = settings.delta_socket or delta_socket(settings.home)
    key = (redis_url or str(socket_path), os.getpid())  # a forked goal run starts its own
    with _lock:
        if key not in _streams:
            channel: Channel = RedisChannel(redis_url) if redis_url else SocketChannel(socket_path)
            _streams[key] = DeltaStream(channel)
        return _streams[key]
