"""The request-head deadline of api/slow_clients.py on a real uvicorn: connections that do not
finish their headers in time are closed, on a new connection and on a kept-alive one; a
request whose head is in is never cut."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from api.slow_clients import with_header_deadline
from tests.stack import free_port

DEADLINE_S = 0.5


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def slow(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"tick\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(chunks())


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Starlette(routes=[Route("/", hello), Route("/slow", slow)])
    config = uvicorn.Config(
        app,
        port=free_port(),
        log_level="warning",
        http=with_header_deadline(DEADLINE_S),
        timeout_keep_alive=30,  # so only the head deadline can close a kept-alive connection
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield config.port
    server.should_exit = True
    thread.join(timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (reading what it sent), or None."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_unfinished_heads_are_closed_at_the_deadline(port: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    for sock in socks[:10]:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    # The other 10 send nothing at all.
    waited = [_closed_within(sock, 3) for sock in socks]
    assert all(w is not None and w < DEADLINE_S + 0.5 for w in waited), waited
    for sock in socks:
        sock.close()


def test_a_kept_alive_connection_gets_the_deadline_for_its_next_head(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(DEADLINE_S + 0.3)  # idle between requests: uvicorn's keep-alive rules
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the next head, never finished
        waited = _closed_within(sock, 3)
        assert waited is not None and waited < DEADLINE_S + 0.5, waited


def test_a_request_whose_head_is_in_is_not_cut(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(5)
        body = b""
        while chunk := sock.recv(4096):
            body += chunk
    assert body.count(b"tick") == 4  # 2 s of streaming, four times the deadline
