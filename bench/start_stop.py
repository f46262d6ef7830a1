"""Start and stop benchmark: `python -m bench.start_stop` measures how soon a goal run starts
and how soon it stops, on the warm runner and on Prefect's stock `serve` side by side in one
run, and rewrites its section of docs/benchmarks.md.

1. Submit -> first model call: POST /task/compound (a one-subtask ready plan, so no planner)
   to the subtask's request arriving at the fake Messages server.
2. A burst of 20 goal runs posted at once (4 parallel extractions, a table over them; models
   simulated at 100 ms): goal runs per minute, and each run's wait from created to Running.
3. Cancel -> Cancelled: POST /task/{id}/cancel while a subtask's request is in flight, to the
   run reading Cancelled; and how long after the answer the request in flight was aborted.

Each stack is `mission up` (runner + API) on its own Prefect server on SQLite; the real
anthropic SDK calls the fake Messages server (tests/fakes) on loopback for 1 and 3.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import START_STOP, write_section
from bench.scaleout import BURST_PLAN  # the same burst goal as the scale-out benchmark
from tests.load import percentile

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = {"warm (ours)": "warm", "Prefect's stock serve": "stock"}
BURST_GOALS = 20
BEFORE_PER_MINUTE = 25.5  # the burst's throughput before the warm runner (issue 15)


def one_subtask(sid: str) -> dict[str, Any]:
    return {
        "subtasks": [
            {"id": sid, "title": sid, "instruction": f"do {sid}", "kind": "extract", "tier": "fast"}
        ]
    }


def _stack(runner: str, home: Path, **env: str) -> tuple[Any, Any]:
    from core.local_server import PrefectServer
    from tests.stack import free_port, start_stack

    server = PrefectServer(home=home, port=free_port()).start()
    os.environ["PREFECT_API_AUTH_STRING"] = server.auth
    # The stock runner polls every second (Prefect takes whole seconds): as it was measured
    # before the warm runner. The warm one is told by events; its poll is a safety net.
    stack = start_stack(
        server.api_url,
        MISSION_HOME=str(home),
        MISSION_RUNNER=runner,
        MISSION_RUNNER_POLL_S="1" if runner == "stock" else "2",
        MISSION_MAX_ACTIVE_RUNS="100",
        **env,
    )
    return server, stack


def _flow_run(prefect_api: str, run_id: str) -> dict[str, Any]:
    import httpx

    from tests.stack import prefect_basic_auth

    response = httpx.get(f"{prefect_api}/flow_runs/{run_id}", auth=prefect_basic_auth())
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def _until(test: Callable[[], bool], within_s: float, what: str, every_s: float = 0.005) -> None:
    deadline = time.monotonic() + within_s
    while not test():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {within_s} s")
        time.sleep(every_s)


def submit_and_cancel(runner: str, fake: Any, runs: int) -> dict[str, list[float]]:
    """Figures 1 and 3 on one stack."""
    from tests.stack import stop_stack

    home = Path(tempfile.mkdtemp(prefix=f"mission-bench-start-{runner}-"))
    server, stack = _stack(runner, home, MISSION_PROVIDER="anthropic")
    figures: dict[str, list[float]] = {"first call": [], "cancelled": [], "aborted": []}
    try:
        stack.submit(goal="warm-up", plan=one_subtask("warmup"))  # both runners start cold
        time.sleep(5)
        for r in range(runs):
            goal = f"start {runner} {r} {time.time()}"
            posted = time.time()
            stack.submit(goal=goal, plan=one_subtask(f"first-{runner}-{r}"))
            _until(lambda g=goal: bool(fake.calls_for(g)), 60, "the first model call")  # type: ignore[misc]
            figures["first call"].append((fake.calls_for(goal)[0].start - posted) * 1000)
        for r in range(runs):
            sid = f"stuck-{runner}-{r}"  # the fake server is shared by both stacks
            fake.on(f"Subtask id: {sid}\n", delay=60)
            run_id = stack.submit(goal=f"stop {runner} {r}", plan=one_subtask(sid))
            _until(lambda s=sid: bool(fake.calls_for(f"Subtask id: {s}\n")), 60, "the call")  # type: ignore[misc]
            with stack.client() as client:
                client.post(f"/task/{run_id}/cancel").raise_for_status()
            answered = time.time()
            _until(
                lambda i=run_id: _flow_run(server.api_url, i)["state"]["name"] == "Cancelled",  # type: ignore[misc]
                60,
                "Cancelled",
                every_s=0.02,
            )
            figures["cancelled"].append((time.time() - answered) * 1000)
            call = fake.calls_for(f"Subtask id: {sid}\n")[0]
            if call.aborted is not None:
                figures["aborted"].append((call.aborted - answered) * 1000)
    finally:
        stop_stack(stack)
        server.stop()
    return figures


def burst(runner: str) -> dict[str, float]:
    """Figure 2 on a stack of its own, with simulated models."""
    from tests.stack import stop_stack

    home = Path(tempfile.mkdtemp(prefix=f"mission-bench-burst-{runner}-"))
    server, stack = _stack(
        runner, home, MISSION_PROVIDER="simulated", MISSION_SIMULATED_LATENCY_MS="default=100"
    )

    def submit(i: int) -> str:
        return str(stack.submit(goal=f"burst {runner} {i}", plan=BURST_PLAN))

    def ended(ids: list[str]) -> list[dict[str, Any]]:
        runs = [_flow_run(server.api_url, i) for i in ids]
        final = {"Completed", "Failed", "Crashed", "Cancelled"}
        return runs if all(r["state"]["name"] in final for r in runs) else []

    try:
        warm = submit(-1)
        _until(lambda: bool(ended([warm])), 120, "the warm-up run", every_s=0.5)
        started = time.time()
        with ThreadPoolExecutor(BURST_GOALS) as pool:
            ids = list(pool.map(submit, range(BURST_GOALS)))
        _until(lambda: bool(ended(ids)), 900, "the burst", every_s=0.5)
        runs = ended(ids)
    finally:
        stop_stack(stack)
        server.stop()

    def at(text: str) -> float:
        return datetime.fromisoformat(text).timestamp()

    makespan = max(at(r["end_time"]) for r in runs) - started
    waits = sorted(at(r["start_time"]) - at(r["created"]) for r in runs)
    return {
        "completed": sum(r["state"]["name"] == "Completed" for r in runs),
        "makespan": makespan,
        "per minute": BURST_GOALS / makespan * 60,
        "wait median": statistics.median(waits),
        "wait max": waits[-1],
    }


def fake_models() -> Any:
    """The fake Messages server (tests/fakes) on loopback, started, and this process's
    environment pointed at it (the stacks started next inherit it)."""
    from tests.fakes.anthropic_server import FakeAnthropic

    fake = FakeAnthropic().start()
    os.environ.update(
        ANTHROPIC_API_KEY="bench-key-not-real",
        ANTHROPIC_BASE_URL=fake.url,
        PREFECT_LOGGING_LEVEL="ERROR",
    )
    return fake


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.start_stop", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="goal runs per timed figure")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    fake = fake_models()
    timed: dict[str, dict[str, list[float]]] = {}
    bursts: dict[str, dict[str, float]] = {}
    try:
        for name, runner in RUNNERS.items():
            print(f"{name}: submit -> first call, cancel -> Cancelled", flush=True)
            timed[name] = submit_and_cancel(runner, fake, args.runs)
            print(f"{name}: burst of {BURST_GOALS}", flush=True)
            bursts[name] = burst(runner)
    finally:
        fake.stop()
    write_report(args.out, timed, bursts, args.runs)
    return 0


def _ms(values: list[float]) -> str:
    if not values:
        return "- | -"
    return f"{statistics.median(values):.0f} ms | {percentile(values, 0.95):.0f} ms"


def write_report(
    out: Path,
    timed: dict[str, dict[str, list[float]]],
    bursts: dict[str, dict[str, float]],
    runs: int,
) -> None:
    import prefect

    warm, stock = (bursts[name] for name in RUNNERS)
    lines = [
        "## 5. Start and stop: the warm runner against Prefect's stock `serve`",
        "",
        "Rewritten by `.venv/bin/python -m bench.start_stop` (also run by `scripts/bench`).",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}.",
        "Each row is `mission up` on a Prefect server of its own (SQLite), measured in the same",
        "run; `MISSION_RUNNER=stock` serves the deployment with Prefect's `serve` (a new Python",
        "process per goal run, found by a 1 s poll), the baseline. The ideal is 0 ms.",
        "",
        f"**Submit -> first model call** ({runs} goal runs of one ready subtask; the real SDK",
        "against the fake Messages server) and **cancel -> Cancelled** (POST cancel while the",
        "subtask's request is in flight, to the run reading Cancelled in Prefect; and when the",
        "request in flight was aborted, relative to the cancel's answer: negative is before it,",
        "as the API answers once the goal run has stopped starting work):",
        "",
        "| runner | first call median | p95 | Cancelled median | p95 | aborted median | p95 |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {_ms(t['first call'])} | {_ms(t['cancelled'])} | {_ms(t['aborted'])} |"
            for name, t in timed.items()
        ),
        "",
        "Targets: first call median <= 300 ms, p95 <= 600 ms; Cancelled p95 <= 2 s.",
        "",
        f"**Burst.** {BURST_GOALS} goal runs posted at once (4 parallel extractions and a",
        "table; simulated models at 100 ms a call), after one warm-up run:",
        "",
        "| runner | completed | makespan | goal runs per minute | wait to start, median | max |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {b['completed']:.0f}/{BURST_GOALS} | {b['makespan']:.1f} s | "
            f"{b['per minute']:.1f} | {b['wait median']:.2f} s | {b['wait max']:.2f} s |"
            for name, b in bursts.items()
        ),
        "",
        f"Throughput, ours to the stock runner: {warm['per minute'] / stock['per minute']:.1f}x;"
        f" to the {BEFORE_PER_MINUTE} goal runs per minute measured before the warm runner:"
        f" {warm['per minute'] / BEFORE_PER_MINUTE:.1f}x (target >= 4x that; median wait <= 1 s).",
        "",
    ]
    write_section(out, START_STOP, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
