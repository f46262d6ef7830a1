"""The guard proxy: each browse context's only way out to the network.

It resolves every destination itself, checks each address with core.web_guard, connects
only to an address it has just checked (so DNS rebinding has nothing to rebind), makes one
request per connection and counts the bytes that come back. No Playwright here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Protocol
from urllib.parse import urlsplit

from core.web_guard import Allowlist, Blocked, IPAddress, check_destination

HEAD_LIMIT = 64 * 1024  # request/response heads larger than this are refused by the proxy
PROXY_HEADER = "x-mission-proxy"  # set only on responses the proxy writes itself


class ProxyLimits(Protocol):
    @property
    def nav_timeout_s(self) -> float: ...


class ProxySession(Protocol):
    """What the proxy needs of one browse subtask's state (tasks.browse._Session)."""

    @property
    def allow(self) -> Allowlist: ...
    @property
    def limits(self) -> ProxyLimits: ...
    @property
    def stop_reason(self) -> str | None: ...
    @property
    def writers(self) -> set[asyncio.StreamWriter]: ...
    @property
    def proxy_notes(self) -> dict[str, str]: ...
    def refuse(self, url: str, reason: str) -> None: ...
    def count_bytes(self, n: int) -> None: ...


async def serve_connection(
    session: ProxySession, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
) -> None:
    """Serve one proxy connection: check the destination, connect to the checked address and
    relay, counting what comes back. One request per connection, so none is misdelivered."""
    session.writers.add(client)
    upstream: asyncio.StreamWriter | None = None
    try:
        head = await client_reader.readuntil(b"\r\n\r\n")
        request_line, _, header_block = head.decode("latin-1").partition("\r\n")
        method, target = [*request_line.split(" "), "", ""][:2]
        tunnel = method.upper() == "CONNECT"
        parts = urlsplit(f"//{target}" if tunnel else target)
        if session.stop_reason is not None:
            return  # the subtask is over: nothing more goes out
        if parts.hostname is None or (not tunnel and parts.scheme.lower() != "http"):
            await _answer(client, 400, "the proxy takes CONNECT host:port or absolute http URLs")
            return
        host, port = parts.hostname, parts.port or (443 if tunnel else 80)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            where = await asyncio.to_thread(check_destination, host, port, session.allow)
        except Blocked as exc:
            session.refuse(f"{host}:{port}", exc.message)
            note = f"blocked: {exc.message} ({host}:{port})"
            session.proxy_notes[f"{host}:{port}"] = note
            await _answer(client, 403, note)
            return
        upstream_reader, upstream = await _connect(session, where.addresses, port)
        if upstream_reader is None or upstream is None:
            note = f"cannot connect to {host}:{port}"
            session.proxy_notes[f"{host}:{port}"] = note
            await _answer(client, 502, note)
            return
        session.writers.add(upstream)
        if tunnel:
            client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream.write(_origin_request(method, path, header_block))
            final = False
            while not final:  # 1xx heads (103 Early Hints) come before the real one
                head = await upstream_reader.readuntil(b"\r\n\r\n")
                session.count_bytes(len(head))
                final = not re.match(rb"HTTP/1\.[01] 1\d\d ", head)
                client.write(_response_head(head, final))
        await client.drain()
        await _relay(session, client_reader, client, upstream_reader, upstream)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # a closed or malformed connection: the page sees a network error
    finally:
        for writer in (client, upstream):
            if writer is not None:
                session.writers.discard(writer)
                writer.close()


async def _connect(
    session: ProxySession, addresses: tuple[IPAddress, ...], port: int
) -> tuple[asyncio.StreamReader | None, asyncio.StreamWriter | None]:
    for address in addresses:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            return await asyncio.wait_for(
                asyncio.open_connection(str(address), port, limit=HEAD_LIMIT),
                session.limits.nav_timeout_s,
            )
    return None, None


async def _relay(
    session: ProxySession,
    client_reader: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side ends; bytes coming back count against the limit."""

    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(64 * 1024):
                if count:
                    session.count_bytes(len(data))
                    if session.stop_reason is not None:
                        return
                writer.write(data)
                await writer.drain()

    tasks = [
        asyncio.ensure_future(copy(client_reader, upstream, False)),
        asyncio.ensure_future(copy(upstream_reader, client, True)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", PROXY_HEADER}


def _origin_request(method: str, path: str, header_block: str) -> bytes:
    """The request in origin form, asking the server to close after its answer."""
    lines = [f"{method} {path} HTTP/1.1"]
    for line in header_block.split("\r\n"):
        if line and line.partition(":")[0].strip().lower() not in _HOP_BY_HOP:
            lines.append(line)
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response_head(head: bytes, final: bool) -> bytes:
    """The origin's response head without any header that would pass for the proxy's own; the
    final one tells the browser not to reuse this connection."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and line.partition(":")[0].strip().lower() not in _HOP_BY_HOP
    ]
    closing = ["Connection: close"] if final else []
    return ("\r\n".join([lines[0], *kept, *closing]) + "\r\n\r\n").encode("latin-1")


async def _answer(client: asyncio.StreamWriter, status: int, note: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = f"{note}\n".encode()
    safe = note.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
    client.write(
        (
            f"HTTP/1.1 {status} {reason}\r\n{PROXY_HEADER}: {safe}\r\n"
            f"content-type: text/plain\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        + body
    )
    with contextlib.suppress(OSError):
        await client.drain()
