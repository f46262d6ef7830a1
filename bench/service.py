"""Service benchmark: `python -m bench.service` measures the HTTP service end to end and
rewrites its section of docs/benchmarks.md.

1. Push latency: from a subtask's model reply leaving the fake Anthropic server to a client
   seeing that subtask Completed, over SSE (ours) and by polling GET progress every second
   (the original page's way), both watching the same goal runs at once.
2. Submit -> first subtask's model call: POST /task/compound to the request at the model.
3. GET progress latency while 50 SSE watchers follow the same goal run, against none.

The stack is `mission up` (runner + API) on a real Prefect server on SQLite, the real
anthropic SDK calling the fake Messages server (tests/fakes) on loopback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import SERVICE, write_section
from tests.load import percentile

ROOT = Path(__file__).resolve().parent.parent
SUBTASKS = 24
STEP_S = 0.25  # subtask i replies after (i + 1) * STEP_S: one completion every 250 ms


def _plan(prefix: str, n: int, step_s: float) -> dict[str, Any]:
    return {
        "subtasks": [
            {
                "id": f"{prefix}{i:02d}",
                "title": f"step {i}",
                "instruction": f"do step {i}",
                "kind": "extract",
                "tier": "fast",
            }
            for i in range(n)
        ]
    }


class SseWatcher(threading.Thread):
    """Follows one goal run's event stream; notes when each subtask is first seen done."""

    def __init__(self, stack: Any, run_id: str, on_doc: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(daemon=True)
        self.stack, self.run_id, self.on_doc = stack, run_id, on_doc
        self.ready = threading.Event()

    def run(self) -> None:
        with (
            self.stack.client() as client,
            client.stream("GET", f"/task/{self.run_id}/events", timeout=300) as response,
        ):
            self.ready.set()
            data = None
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data is not None:
                    doc = json.loads(data)
                    data = None
                    if "state" in doc:
                        self.on_doc(doc)
                        if doc["state"] in ("Completed", "Failed", "Cancelled", "Crashed"):
                            return


def _first_completed(seen: dict[str, float], doc: dict[str, Any]) -> None:
    now = time.time()
    for s in doc["subtasks"]:
        if s["state"] == "Completed":
            seen.setdefault(s["id"], now)


def push_vs_poll(stack: Any, fake: Any, runs: int) -> dict[str, list[float]]:
    push: list[float] = []
    poll: list[float] = []
    for r in range(runs):
        prefix = f"r{r}s"
        for i in range(SUBTASKS):
            fake.on(f"Subtask id: {prefix}{i:02d}", delay=(i + 1) * STEP_S)
        goal = f"latency run {r} {time.time()}"
        run_id = stack.submit(goal=goal, plan=_plan(prefix, SUBTASKS, STEP_S))
        pushed: dict[str, float] = {}
        polled: dict[str, float] = {}
        watcher = SseWatcher(stack, run_id, functools.partial(_first_completed, pushed))
        watcher.start()
        with stack.client() as client:
            while True:  # the baseline: the original page's 1-second poll
                doc = client.get(f"/task/{run_id}/progress").json()
                _first_completed(polled, doc)
                if doc["state"] in ("Completed", "Failed", "Cancelled", "Crashed"):
                    break
                time.sleep(1.0)
        watcher.join(timeout=60)
        replies = {
            c.prompt.split("Subtask id: ")[1].split("\n")[0]: c.end
            for c in fake.calls
            if goal in c.prompt and "Subtask id: " in c.prompt
        }
        for sid, ended in replies.items():
            if sid.startswith(prefix):
                push.append((pushed[sid] - ended) * 1000)
                poll.append((polled[sid] - ended) * 1000)
    return {"push": push, "poll": poll}


def submit_to_first_call(stack: Any, fake: Any, runs: int) -> dict[str, list[float]]:
    """POST -> first model call (ms), split at the goal run's Prefect state changes."""
    from prefect.client.orchestration import get_client

    parts: dict[str, list[float]] = {"total": [], "poll": [], "start": [], "first call": []}
    for r in range(runs):
        goal = f"submit run {r} {time.time()}"
        posted = time.time()
        run_id = stack.submit(goal=goal, plan=_plan(f"q{r}s", 1, 0))
        while not (calls := [c for c in fake.calls if goal in c.prompt]):
            time.sleep(0.005)
        first = min(c.start for c in calls)
        with stack.client() as client:
            while client.get(f"/task/{run_id}/progress").json()["state"] == "Running":
                time.sleep(0.2)
        with get_client(sync_client=True) as client:
            at = {s.name: s.timestamp.timestamp() for s in client.read_flow_run_states(run_id)}
        parts["total"].append((first - posted) * 1000)
        parts["poll"].append((at["Pending"] - posted) * 1000)
        parts["start"].append((at["Running"] - at["Pending"]) * 1000)
        parts["first call"].append((first - at["Running"]) * 1000)
    return parts


def progress_latency(stack: Any, fake: Any, watchers: int, requests: int) -> list[float]:
    """GET progress latencies (ms) during a running goal run followed by `watchers` SSE
    clients."""
    prefix = f"w{watchers}s"
    for i in range(SUBTASKS):
        fake.on(f"Subtask id: {prefix}{i:02d}", delay=2.0 + (i % 8) * 0.5)
    run_id = stack.submit(goal=f"watched by {watchers}", plan=_plan(prefix, SUBTASKS, 0))
    threads = [SseWatcher(stack, run_id, lambda doc: None) for _ in range(watchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.ready.wait(30)
    samples: list[float] = []
    with stack.client() as client:
        while not fake.calls_for(f"Subtask id: {prefix}00"):
            time.sleep(0.05)
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(f"/task/{run_id}/progress")
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
            time.sleep(0.05)
        while client.get(f"/task/{run_id}/progress").json()["state"] == "Running":
            time.sleep(0.5)
    for t in threads:
        t.join(timeout=60)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="goal runs for the latency figures")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="mission-bench-service-"))
    from tests.fakes.anthropic_server import FakeAnthropic

    fake = FakeAnthropic().start()
    os.environ.update(
        MISSION_HOME=str(home),
        MISSION_PROVIDER="anthropic",
        ANTHROPIC_API_KEY="bench-key-not-real",
        ANTHROPIC_BASE_URL=fake.url,
        PREFECT_LOGGING_LEVEL="ERROR",
    )
    from core.local_server import PrefectServer
    from tests.stack import free_port, start_stack, stop_stack

    server = PrefectServer(home=home, port=free_port()).start()
    os.environ.update(server.client_env())
    # Every watcher here is the same client (one token): the load is many people's.
    stack = start_stack(server.api_url, MISSION_MAX_STREAMS_PER_CLIENT="100")
    try:
        latency = push_vs_poll(stack, fake, args.runs)
        submit = submit_to_first_call(stack, fake, runs=5)
        idle = progress_latency(stack, fake, watchers=0, requests=60)
        busy = progress_latency(stack, fake, watchers=50, requests=60)
    finally:
        stop_stack(stack)
        server.stop()
        fake.stop()
    write_report(args.out, latency, submit, idle, busy, args.runs)
    return 0


def _row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {len(values)} | {statistics.median(values):.0f} ms | "
        f"{percentile(values, 0.95):.0f} ms | {max(values):.0f} ms |"
    )


def write_report(
    out: Path,
    latency: dict[str, list[float]],
    submit: dict[str, list[float]],
    idle: list[float],
    busy: list[float],
    runs: int,
) -> None:
    import prefect

    push, poll = latency["push"], latency["poll"]
    ratio = statistics.median(poll) / max(statistics.median(push), 1)
    lines = [
        "## 2. The service: pushed progress, submit to first call, progress under watchers",
        "",
        "Rewritten by `.venv/bin/python -m bench.service` (also run by `scripts/bench`).",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}.",
        "Stack: `mission up` (runner + API) on a real Prefect server on SQLite; the real",
        "anthropic SDK against the fake Messages server (tests/fakes) on loopback. The clients,",
        "the fake server and the clock all live in the bench process.",
        "",
        f"**Push latency.** {runs} goal runs of {SUBTASKS} independent subtasks whose model",
        f"replies leave the fake server {STEP_S * 1000:.0f} ms apart. Delay = when a client first",
        "sees the subtask `Completed` minus when its reply left the fake server. *SSE* is",
        "`GET /task/{id}/events`; *1 s polling* is `GET /task/{id}/progress` every second, the",
        "original page's way; both watch the same runs at the same time. The ideal is 0.",
        "",
        "| client | subtasks | median | p95 | max |",
        "|---|---|---|---|---|",
        _row("SSE (ours)", push),
        _row("1 s polling", poll),
        "",
        f"p95 of push: {percentile(push, 0.95):.0f} ms (target <= 100 ms). Polling is {ratio:.0f}x",
        "slower at the median.",
        "",
        "**Submit to first model call.** From sending `POST /task/compound` (a one-subtask ready",
        "plan, so no planner) to the subtask's request arriving at the fake model, split at the",
        "goal run's Prefect state times:",
        "",
        "| part | runs | median | p95 | max |",
        "|---|---|---|---|---|",
        _row("POST -> first model call", submit["total"]),
        _row("POST -> Pending (runner's poll)", submit["poll"]),
        _row("Pending -> Running (new process)", submit["start"]),
        _row("Running -> first model call", submit["first call"]),
        "",
        "The runner asks for new goal runs every second (`MISSION_RUNNER_POLL_S`; Prefect takes",
        "whole seconds) and starts each in a fresh Python process (importing Prefect and the",
        "flow). The first model call of a process also imports the anthropic SDK (about 1.3 s",
        "on this machine, measured alone).",
        "",
        "**GET progress under 50 watchers.** Latency of `GET /task/{id}/progress` (60 requests)",
        f"during a running goal run of {SUBTASKS} subtasks, with no SSE watcher and with 50 SSE",
        "watchers on the same run (the API follows Prefect's events once per run and shares",
        "each document among that run's watchers).",
        "",
        "| watchers | requests | median | p95 | max |",
        "|---|---|---|---|---|",
        _row("0", idle),
        _row("50", busy),
        "",
    ]
    write_section(out, SERVICE, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
