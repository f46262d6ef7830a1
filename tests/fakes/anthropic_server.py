"""A fake Anthropic Messages API on loopback, driven by the real `anthropic` SDK in tests.

Scripted per request by rules that match text in the request's prompt: tool replies, usage
figures (cache reads and writes too), failures (429 with retry-after, 529, 500, 400, each with
the server's own message), slow replies, truncated or refused output, malformed tool input and
dropped connections. Like llama.cpp's llama-server it can refuse images (a text-only model)
and it serves the OpenAI-style `POST /v1/chat/completions` with a `response_format` JSON
schema, the structured output of MISSION_STRUCTURED=json_schema. It records every request with its
start and end time and counts requests in flight per model, so tier limits are checked at
the wire.

A Messages request with `"stream": true` is answered as Anthropic streams: server-sent events,
the tool input's JSON in STREAM_CHUNKS `input_json_delta` pieces, the request's latency spread
over them (part before the first, the rest between them), each piece's write time recorded so
a benchmark can measure from the wire to the reader. Errors, drops and refused images are
answered before any stream starts, as for other requests; web searches and chat completions
are never streamed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STREAM_CHUNKS = 6  # the pieces a streamed reply's content is sent in


@dataclass
class Rule:
    match: str
    times: int | None  # None: forever
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    stop_reason: str | None = None
    tool_input: dict[str, Any] | None = None
    usage: tuple[int, int] | None = None
    cache: tuple[int, int] | None = None  # cache_creation_input_tokens, cache_read_input_tokens
    message: str = "injected"  # the error's message, when status is not 200
    drop: bool = False
    # A streamed reply: an error event of this type (overloaded_error...) after its first piece.
    stream_error: str | None = None


@dataclass
class Call:
    model: str
    prompt: str
    body: dict[str, Any]
    start: float
    end: float = 0.0
    status: int = 0
    aborted: float | None = None  # when the client closed the connection while it waited
    # A streamed reply: (time.time() at the write, the text of the content block sent so far)
    # for each delta written, so the delay from a write to a reader's seeing it is measurable.
    chunks: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class FakeAnthropic:
    latency: float = 0.02
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    plans: list[dict[str, Any]] = field(default_factory=list)
    # What Anthropic's server-side web search tool finds: (url, title) pairs.
    search_hits: list[tuple[str, str]] = field(default_factory=list)
    # A text-only model: a request with an image gets llama-server's 500 and this message.
    refuse_images: str | None = None
    # False: POST /v1/chat/completions answers 404, as on an Anthropic-only endpoint.
    chat_completions: bool = True
    # The pieces a streamed reply's content is sent in (its latency spread between them).
    stream_chunks: int = STREAM_CHUNKS

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # dropped and timed-out connections are what some tests ask for

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.calls.clear()
            self.plans.clear()
            self.in_flight.clear()
            self.peak_in_flight.clear()
            self.search_hits.clear()
            self.latency = 0.02
            self.refuse_images = None
            self.chat_completions = True
            self.stream_chunks = STREAM_CHUNKS

    # --- scripting -------------------------------------------------------------------------
    def on(self, match: str, times: int | None = None, **behaviour: Any) -> None:
        """Requests whose prompt contains `match` get `behaviour` (first matching rule wins)."""
        with self._lock:
            self.rules.append(Rule(match=match, times=times, **behaviour))

    def enqueue_plan(self, plan: dict[str, Any]) -> None:
        """The next planner request gets this plan as its submit_plan input."""
        with self._lock:
            self.plans.append(plan)

    def calls_for(self, match: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if match in c.prompt]

    # --- serving ---------------------------------------------------------------------------
    def _rule_for(self, prompt: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.match in prompt and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("content-length", 0))) or b"{}")
        chat = h.path.rstrip("/").endswith("/chat/completions")
        if chat and not self.chat_completions:
            self._send(h, 404, {"error": {"message": "File Not Found", "type": "not_found_error"}})
            return
        model = str(body.get("model"))
        prompt = "\n".join(
            block.get("text", "")
            for message in body.get("messages", [])
            for block in (
                message["content"]
                if isinstance(message["content"], list)
                else [{"text": str(message["content"])}]
            )
            if isinstance(block, dict)
        )
        call = Call(model=model, prompt=prompt, body=body, start=time.time())
        rule = self._rule_for(prompt) or Rule(match="", times=None)
        with self._lock:
            self.calls.append(call)
            self.in_flight[model] += 1
            self.peak_in_flight[model] = max(self.peak_in_flight[model], self.in_flight[model])
        streamed = body.get("stream") is True and not chat and not _searches(body)
        wait = self.latency + rule.delay
        try:
            if _client_left(h, wait / self.stream_chunks if streamed else wait):
                call.aborted = time.time()
                call.status = -2
                return
            if rule.drop:
                h.close_connection = True
                h.connection.shutdown(2)
                call.status = -1
                return
            images = any(
                isinstance(block, dict) and block.get("type") in ("image", "image_url")
                for message in body.get("messages", [])
                if isinstance(message.get("content"), list)
                for block in message["content"]
            )
            if images and self.refuse_images is not None:
                rule = Rule(match="", times=None, status=500, message=self.refuse_images)
            if rule.status != 200:
                kind = {
                    429: "rate_limit_error",
                    529: "overloaded_error",
                    400: "invalid_request_error",
                }
                error = {
                    "type": "error",
                    "error": {"type": kind.get(rule.status, "api_error"), "message": rule.message},
                }
                headers = (
                    {"retry-after": str(rule.retry_after)} if rule.retry_after is not None else {}
                )
                self._send(h, rule.status, error, headers)
                call.status = rule.status
                return
            if streamed:
                pieces, reply = self.stream_chunks, self._message(body, rule)
                self._stream(h, call, reply, rule, wait - wait / pieces, pieces)
                return
            reply = self._chat_completion(body, rule) if chat else self._message(body, rule)
            self._send(h, 200, reply)
            call.status = 200
        finally:
            call.end = time.time()
            with self._lock:
                self.in_flight[model] -= 1

    def _tool_input(self, tool: str, body: dict[str, Any], rule: Rule) -> dict[str, Any]:
        if rule.tool_input is not None:
            data = rule.tool_input
        elif tool == "submit_plan":
            with self._lock:
                data = self.plans.pop(0) if self.plans else {"subtasks": []}
        elif tool == "submit_revision":  # the replanner: nothing to add, unless scripted
            data = {"subtasks": []}
        else:
            label = _subtask_id(body)
            data = {"output": f"output of {label}", "learned": f"{label} learned something"}
        return data

    def _message(self, body: dict[str, Any], rule: Rule) -> dict[str, Any]:
        if _searches(body):
            return self._searched(body)
        tool = (body.get("tool_choice") or {}).get("name") or "report_result"
        data = self._tool_input(tool, body, rule)
        stop = rule.stop_reason or "tool_use"
        content: list[dict[str, Any]] = []
        if stop == "tool_use":
            content.append({"type": "tool_use", "id": "toolu_fake", "name": tool, "input": data})
        else:
            content.append({"type": "text", "text": "partial"})
        inp, out = rule.usage or (100, 20)
        written, read = rule.cache or (0, 0)
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
            },
        }

    def _chat_completion(self, body: dict[str, Any], rule: Rule) -> dict[str, Any]:
        """An OpenAI-style chat completion whose content is JSON, as `response_format` asks."""
        schema = (body.get("response_format") or {}).get("json_schema") or {}
        data = self._tool_input(str(schema.get("name") or "report_result"), body, rule)
        finish = "length" if rule.stop_reason == "max_tokens" else "stop"
        text = json.dumps(data) if finish == "stop" else json.dumps(data)[:5]
        inp, out = rule.usage or (100, 20)
        read = (rule.cache or (0, 0))[1]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": inp + read,
                "completion_tokens": out,
                "total_tokens": inp + read + out,
                "prompt_tokens_details": {"cached_tokens": read},
            },
        }

    def _searched(self, body: dict[str, Any]) -> dict[str, Any]:
        """A reply that used the web search tool: its result blocks, then a line of text."""
        results = [
            {"type": "web_search_result", "url": url, "title": title,
             "encrypted_content": "opaque", "page_age": None}
            for url, title in self.search_hits
        ]  # fmt: skip
        return {
            "id": "msg_fake_search",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_fake",
                    "name": "web_search",
                    "input": {"query": str(body.get("messages", [{}])[0].get("content", ""))},
                },
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_fake",
                    "content": results,
                },
                {"type": "text", "text": f"Found {len(results)} results."},
            ],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 50,
                "output_tokens": 10,
                "server_tool_use": {"web_search_requests": 1},
            },
        }

    @staticmethod
    def _stream(
        h: BaseHTTPRequestHandler,
        call: Call,
        message: dict[str, Any],
        rule: Rule,
        wait: float,
        chunks: int,
    ) -> None:
        """`message` as Anthropic streams it, its content block's text in `chunks` pieces
        `wait` seconds apart in all; the connection closes at the end (no content-length)."""
        block = message["content"][0]
        if block["type"] == "tool_use":
            text = json.dumps(block["input"], ensure_ascii=False)
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": ""}
            key = "partial_json"
        else:
            text = block["text"]
            start = {**block, "text": ""}
            delta = {"type": "text_delta", "text": ""}
            key = "text"
        usage = message["usage"]
        opening = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        pieces = _split(text, chunks)
        # Each event leaves when written, as from a real server (no Nagle's algorithm holding
        # a small write back until the one before is acknowledged).
        h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("cache-control", "no-cache")
        h.send_header("connection", "close")
        h.end_headers()
        h.close_connection = True

        def event(kind: str, data: dict[str, Any]) -> None:
            line = json.dumps({"type": kind, **data}, ensure_ascii=False)
            h.wfile.write(f"event: {kind}\ndata: {line}\n\n".encode())

        try:
            event("message_start", {"message": opening})
            event("content_block_start", {"index": 0, "content_block": start})
            sent, gap = "", wait / max(1, len(pieces) - 1)
            for i, piece in enumerate(pieces):
                if (i or len(pieces) == 1) and _client_left(h, gap):
                    call.aborted, call.status = time.time(), -2
                    return
                event("content_block_delta", {"index": 0, "delta": {**delta, key: piece}})
                sent += piece
                call.chunks.append((time.time(), sent))
                if rule.stream_error is not None:
                    error = {"type": rule.stream_error, "message": rule.message}
                    event("error", {"error": error})
                    call.status = -3  # the stream ended in an error event
                    return
            event("content_block_stop", {"index": 0})
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            event("message_stop", {})
        except (BrokenPipeError, ConnectionResetError):  # the client gave up mid-write
            call.aborted, call.status = time.time(), -2
            return
        call.status = 200

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            h.wfile.write(raw)


def _client_left(h: BaseHTTPRequestHandler, seconds: float) -> bool:
    """Wait `seconds` for the reply to be due; True (at once) if the client closes the
    connection first: an aborted request."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([h.connection], [], [], left)
        if readable:
            try:
                if h.connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
            time.sleep(min(left, 0.01))  # a pipelined byte, not a close: keep waiting
    return False


def _searches(body: dict[str, Any]) -> bool:
    """Whether the request asks for Anthropic's server-side web search."""
    return any(str(t.get("type", "")).startswith("web_search") for t in body.get("tools", []))


def _split(text: str, n: int) -> list[str]:
    """`text` in `n` pieces of nearly equal length (fewer when it is shorter than that)."""
    n = max(1, min(n, len(text)))
    cuts = [len(text) * i // n for i in range(n + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


def _subtask_id(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        for block in message.get("content", []):
            text = block.get("text", "") if isinstance(block, dict) else ""
            for line in text.splitlines():
                if line.startswith("Subtask id: "):
                    return line.removeprefix("Subtask id: ").strip()
    return "join"
