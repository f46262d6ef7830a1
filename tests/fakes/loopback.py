"""A loopback HTTP server in a thread, the base of fake services: they write how to answer a GET."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    """Serves GET requests on 127.0.0.1:<a free port> with `handle`, one thread per request.

    A dataclass subclass calls `LoopbackServer.__init__(self)` from its `__post_init__`.
    """

    def __init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                service.handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) hangs up: expected

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def send(h: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    """One whole response; a client that already hung up is not an error."""
    h.send_response(status)
    h.send_header("content-type", content_type)
    h.send_header("content-length", str(len(body)))
    h.end_headers()
    with contextlib.suppress(OSError):
        h.wfile.write(body)
