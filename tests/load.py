"""A burst of goal runs with many SSE watchers on one stack: the load test's and the soak
benchmark's driver. It records what every watcher saw and how fast the API answered."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.stack import Stack, prefect_basic_auth, sse_events

FINAL = {"Completed", "Failed", "Crashed", "Cancelled"}


def layered_plan(layers: int = 5, width: int = 4) -> dict[str, Any]:
    """`layers` x `width` subtasks, each depending on the whole layer before it."""
    subtasks = []
    for layer in range(layers):
        for i in range(width):
            subtasks.append(
                {
                    "id": f"l{layer}s{i}",
                    "title": f"layer {layer} step {i}",
                    "instruction": f"do step {i} of layer {layer}",
                    "kind": "extract",
                    "tier": "fast",
                    "depends_on": [f"l{layer - 1}s{j}" for j in range(width)] if layer else [],
                }
            )
    return {"subtasks": subtasks}


@dataclass
class Watcher:
    """One SSE client following one goal run to its end."""

    run_id: str
    docs: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    reconnects: int = 0
    error: str | None = None

    def follow(self, stack: Stack, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_id: str | None = None
        while not self.ended and time.monotonic() < deadline:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with (
                    stack.client() as client,
                    client.stream(
                        "GET", f"/task/{self.run_id}/events", headers=headers, timeout=timeout_s
                    ) as response,
                ):
                    for event in sse_events(response):
                        if event.get("event") == "progress":
                            self.docs.append(json.loads(event["data"]))
                            last_id = event.get("id", last_id)
                        elif event.get("event") == "end":
                            self.ended = True
                            return
            except Exception as exc:  # counted and retried: the test says what happened
                self.error = f"{type(exc).__name__}: {exc}"
            self.reconnects += 1
            time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of `values` (NaN for none)."""
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Burst:
    """What one burst did: its goal runs, its watchers, and the API's answer times."""

    run_ids: list[str]
    watchers: list[Watcher]
    submit_ms: list[float]  # each POST /task/compound, in the order they were answered
    latencies_ms: list[float]
    failed_requests: list[str]
    seconds: float

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms)


def _count(client: httpx.Client, body: dict[str, Any]) -> int:
    response = client.post("/task_runs/count", json=body)
    assert response.status_code == 200, response.text
    return int(response.json())


def recorded(prefect_api_url: str, run_ids: list[str], timeout_s: float = 120) -> float:
    """Seconds until the Prefect server's database holds a final state for every task run of
    these goal runs: task run states arrive as events, recorded a moment later; a server
    stopped before it has caught up drops the events still in its queue."""
    started = time.monotonic()
    body = {
        "flow_runs": {"id": {"any_": run_ids}},
        "task_runs": {"state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING", "PAUSED"]}}},
    }
    with httpx.Client(base_url=prefect_api_url, auth=prefect_basic_auth(), timeout=30) as client:
        while (left := _count(client, body)) > 0:
            assert time.monotonic() - started < timeout_s, f"{left} task run states not recorded"
            time.sleep(0.5)
    return time.monotonic() - started


def burst(
    stack: Stack,
    goals: int,
    watchers: int,
    plan: dict[str, Any],
    timeout_s: float = 600,
    submit_timeout_s: float = 30,
) -> Burst:
    """Submit `goals` goal runs at once, follow them with `watchers` SSE clients spread over
    them, and time GET /task/{id}/progress (every 0.2 s, round robin) until all have ended."""
    started = time.monotonic()
    submit_ms: list[float] = []

    def submit(i: int) -> str:
        asked = time.perf_counter()
        with stack.client(timeout=submit_timeout_s) as client:
            response = client.post("/task/compound", json={"goal": f"load goal {i}", "plan": plan})
        assert response.status_code == 202, response.text
        submit_ms.append((time.perf_counter() - asked) * 1000)
        return str(response.json()["id"])

    with ThreadPoolExecutor(goals) as pool:
        run_ids = list(pool.map(submit, range(goals)))
    followers = [Watcher(run_ids[i % goals]) for i in range(watchers)]
    threads = [
        threading.Thread(target=w.follow, args=(stack, timeout_s), daemon=True) for w in followers
    ]
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    failed: list[str] = []
    done = threading.Event()

    def probe() -> None:
        with stack.client() as client:
            i = 0
            while not done.is_set():
                asked = time.perf_counter()
                try:
                    response = client.get(f"/task/{run_ids[i % goals]}/progress")
                    if response.status_code != 200:
                        failed.append(f"{response.status_code}: {response.text[:200]}")
                except Exception as exc:
                    failed.append(f"{type(exc).__name__}: {exc}")
                latencies.append((time.perf_counter() - asked) * 1000)
                i += 1
                time.sleep(0.2)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    for thread in threads:
        thread.join(timeout=max(1.0, timeout_s - (time.monotonic() - started)))
    done.set()
    prober.join(timeout=30)
    return Burst(run_ids, followers, submit_ms, latencies, failed, time.monotonic() - started)
