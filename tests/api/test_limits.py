"""The body limit of api/limits.py on a real uvicorn: a body over the cap gets a 413 the
client can read, whether it announced its length or sent chunks, and the connection stays
usable; a body announced too large to read through is refused before it is sent."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.limits import BodySizeLimit
from tests.stack import free_port

CAP = 1000
REFUSED = {"detail": "the request body is larger than 1,000 bytes"}


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"length": len(await request.body())})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = BodySizeLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_bytes=CAP)
    config = uvicorn.Config(app, port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{config.port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_client_that_sends_everything_before_reading_gets_its_413(url: str) -> None:
    request = urllib.request.Request(url, data=b"x" * 10_000_000, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.loads(refused.value.read()) == REFUSED


def test_after_a_413_the_connection_serves_the_next_request(url: str) -> None:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/", body=b"x" * 2_000_000)
    first = connection.getresponse()
    assert (first.status, json.loads(first.read())) == (413, REFUSED)
    assert first.getheader("connection") is None  # kept alive
    connection.request("POST", "/", body=b"x" * 10)
    second = connection.getresponse()
    assert (second.status, json.loads(second.read())) == (200, {"length": 10})
    connection.close()


def test_chunked_bodies_are_counted_as_they_come(url: str) -> None:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/", body=iter([b"x" * 600] * 5), encode_chunked=True)
    refused = connection.getresponse()
    assert (refused.status, json.loads(refused.read())) == (413, REFUSED)
    connection.close()


def test_a_body_announced_beyond_what_is_drained_is_refused_before_it_is_sent(url: str) -> None:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()
    assert answer.endswith(json.dumps(REFUSED).encode())
