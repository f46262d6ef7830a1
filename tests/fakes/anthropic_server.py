"""A fake Anthropic Messages API on loopback, driven by the real `anthropic` SDK in tests.

Scripted per request by rules that match text in the request's prompt: tool replies, usage
figures, failures (429 with retry-after, 529, 500, 400), slow replies, truncated or refused
output, malformed tool input and dropped connections. It records every request with its
start and end time and counts requests in flight per model, so tier limits are checked at
the wire.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    drop: bool = False


@dataclass
class Call:
    model: str
    prompt: str
    body: dict[str, Any]
    start: float
    end: float = 0.0
    status: int = 0


@dataclass
class FakeAnthropic:
    latency: float = 0.02
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    plans: list[dict[str, Any]] = field(default_factory=list)

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
            self.latency = 0.02

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
        model = str(body.get("model"))
        prompt = "\n".join(
            block.get("text", "")
            for message in body.get("messages", [])
            for block in (message["content"] if isinstance(message["content"], list) else [])
            if isinstance(block, dict)
        )
        call = Call(model=model, prompt=prompt, body=body, start=time.time())
        rule = self._rule_for(prompt) or Rule(match="", times=None)
        with self._lock:
            self.calls.append(call)
            self.in_flight[model] += 1
            self.peak_in_flight[model] = max(self.peak_in_flight[model], self.in_flight[model])
        try:
            time.sleep(self.latency + rule.delay)
            if rule.drop:
                h.close_connection = True
                h.connection.shutdown(2)
                call.status = -1
                return
            if rule.status != 200:
                kind = {
                    429: "rate_limit_error",
                    529: "overloaded_error",
                    400: "invalid_request_error",
                }
                error = {
                    "type": "error",
                    "error": {"type": kind.get(rule.status, "api_error"), "message": "injected"},
                }
                headers = (
                    {"retry-after": str(rule.retry_after)} if rule.retry_after is not None else {}
                )
                self._send(h, rule.status, error, headers)
                call.status = rule.status
                return
            self._send(h, 200, self._message(body, rule))
            call.status = 200
        finally:
            call.end = time.time()
            with self._lock:
                self.in_flight[model] -= 1

    def _message(self, body: dict[str, Any], rule: Rule) -> dict[str, Any]:
        tool = (body.get("tool_choice") or {}).get("name") or "report_result"
        if rule.tool_input is not None:
            data = rule.tool_input
        elif tool == "submit_plan":
            with self._lock:
                data = self.plans.pop(0) if self.plans else {"subtasks": []}
        else:
            label = _subtask_id(body)
            data = {"output": f"output of {label}", "learned": f"{label} learned something"}
        stop = rule.stop_reason or "tool_use"
        content: list[dict[str, Any]] = []
        if stop == "tool_use":
            content.append({"type": "tool_use", "id": "toolu_fake", "name": tool, "input": data})
        else:
            content.append({"type": "text", "text": "partial"})
        inp, out = rule.usage or (100, 20)
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
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

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


def _subtask_id(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        for block in message.get("content", []):
            text = block.get("text", "") if isinstance(block, dict) else ""
            for line in text.splitlines():
                if line.startswith("Subtask id: "):
                    return line.removeprefix("Subtask id: ").strip()
    return "join"
