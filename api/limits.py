"""Refuse request bodies over the size cap with a 413 every client can read.

A server that answers and closes while the client is still sending makes many clients
(Python's urllib, most simple ones: they send the whole body before reading) see "connection
reset" instead of the answer. So a body over the cap is read and thrown away, up to
DRAIN_MAX_BYTES and DRAIN_MAX_S, before the 413 goes out on a connection that stays usable.
A body announced larger than that (or a client that waits for `100 Continue`) gets its 413
at once, before any of it is read, and the connection is closed after it.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What is read (and thrown away) at most to answer an oversized body readably: 10 MB from a
# simple client gets its 413; a body announced larger is refused unread.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
DRAIN_MAX_S = 15.0


class BodySizeLimit:
    """Pure ASGI (streaming responses pass through untouched). Checks Content-Length up front
    and counts the bytes of chunked bodies as they arrive; the route never sees a body over
    the cap (to it, a chunked one's client went away, and what it answers is dropped)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            waits = headers.get(b"expect", b"").lower() == b"100-continue"
            if waits or not length.isdigit() or int(length) > DRAIN_MAX_BYTES:
                await self._refuse(send, close=True)  # told not to send: nothing to drain
            else:
                await self._refuse(send, close=not await _drain(receive, 0))
            return
        seen = 0
        started = answered = False

        async def counted_receive() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if not started:  # else too late for a 413: the body just stops
                        answered = True
                        await self._refuse(send, close=not await _drain(receive, seen))
                    # The app reads no more of it: to the app, the client went away.
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out; what the app says about the lost body is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not answered:  # an app that raises on a lost client: the 413 was the answer
                raise

    async def _refuse(self, send: Send, close: bool) -> None:
        body = json.dumps(
            {"detail": f"the request body is larger than {self.max_bytes:,} bytes"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:  # the rest of the body may still be on its way: this connection is done
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, seen: int) -> bool:
    """Read and drop the rest of the body; True when it all came within the bounds."""
    try:
        async with asyncio.timeout(DRAIN_MAX_S):
            while seen <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # the client went away
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return seen <= DRAIN_MAX_BYTES
    except TimeoutError:
        return False
    return False
