"""A deadline for a request's head: uvicorn (0.54) never closes a connection that has not
finished sending its request line and headers, so a client can hold sockets open for ever by
sending a header a byte at a time (slowloris). uvicorn has no setting for it.

`with_header_deadline(seconds)` is uvicorn's h11 protocol (the one it picks without
httptools, which is not installed) with one change: from a connection's start, and from the
first byte of each later request on a kept-alive connection, the request's head must be
complete within `seconds`, or the connection is closed. A request whose head is complete is
not timed (its body and the response, an event stream included, take as long as they take);
an idle kept-alive connection stays under uvicorn's own keep-alive timeout.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is late."""

    header_timeout_s = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._time_the_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._time_the_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timing()
        super().connection_lost(exc)

    def _time_the_head(self) -> None:
        """Timed while a request's head is awaited and bytes of it came (or the connection is
        new); not once the head is in, nor while uvicorn's keep-alive timer watches."""
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self.timeout_keep_alive_task is None:
            if self._head_deadline is None:
                self._head_deadline = self.loop.call_later(self.header_timeout_s, self._late)
        else:
            self._stop_timing()

    def _stop_timing(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _late(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def with_header_deadline(seconds: float) -> type[HeaderDeadline]:
    """The protocol class to give uvicorn (`http=`), with its deadline set."""
    return type("HeaderDeadline", (HeaderDeadline,), {"header_timeout_s": seconds})
