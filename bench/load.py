"""Load benchmark: `python -m bench.load` rewrites its section of docs/benchmarks.md.

1. A burst on the default stack (`mission up` on a Prefect server on SQLite): 30 goal runs of
   20 subtasks posted at once, 100 SSE watchers, GET /task/{id}/progress timed every 0.2 s.
2. A soak: bursts of 10 goal runs with 20 watchers back to back for `--minutes` (15 by
   default), the resident memory of the Prefect server, the API and the runner sampled every
   10 s; the trend of each (least-squares slope after a 2-minute warm-up, and over the soak's
   second half alone) says whether anything grows or levels off. The samples are kept in
   docs/bench/soak_memory.csv.

Models are simulated (100 ms per call), so this measures the orchestration and the service.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.goal_timer import free_port
from bench.report import LOAD, write_section

ROOT = Path(__file__).resolve().parent.parent
GOALS, WATCHERS = 30, 100
SOAK_GOALS, SOAK_WATCHERS = 10, 20
SUBMIT_TIMEOUT_S = 120.0  # a stalled SQLite write is waited out (60 s), then reported
SAMPLE_EVERY_S = 10.0
WARM_UP_S = 120.0


def _stack(home: Path) -> tuple[Any, Any]:
    from core.local_server import PrefectServer
    from tests.stack import start_stack

    # The server logs every request it answers 503 (SQLite busy) for the client to retry.
    os.environ["PREFECT_API_LOG_RETRYABLE_ERRORS"] = "true"
    server = PrefectServer(home=home, port=free_port()).start()
    os.environ["PREFECT_API_AUTH_STRING"] = server.auth
    stack = start_stack(
        server.api_url,
        MISSION_HOME=str(home),
        MISSION_PROVIDER="simulated",
        MISSION_SIMULATED_LATENCY_MS="default=100",
        MISSION_MAX_ACTIVE_RUNS=str(GOALS + 10),
        # Every watcher here is the same client (one token): the load is many people's.
        MISSION_MAX_STREAMS_PER_CLIENT=str(WATCHERS),
    )
    return server, stack


def _lock_errors(home: Path) -> dict[str, Any]:
    log = (home / "prefect-server.log").read_text()
    others = [
        line.split(" | ERROR ", 1)[1].strip()
        for line in log.splitlines()
        if " | ERROR " in line
        and "retryable exception in request" not in line
        and "Exception in ASGI application" not in line
    ]
    return {
        "retried requests": log.count("Encountered retryable exception in request"),
        "locked lines": log.count("database is locked"),
        "other errors": len(others),
        "other error lines": sorted(set(others)),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    from tests.load import percentile

    return {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": percentile(values, 1),
    }


def _burst(stack: Any, goals: int, watchers: int) -> Any:
    """`goals` goal runs of 20 subtasks (5 layers of 4) at once with `watchers` watchers."""
    from tests.load import burst, layered_plan

    plan = layered_plan(layers=5, width=4)
    return burst(stack, goals, watchers, plan, submit_timeout_s=SUBMIT_TIMEOUT_S)


def run_burst() -> dict[str, Any]:
    from tests.load import recorded
    from tests.stack import stop_stack

    home = Path(tempfile.mkdtemp(prefix="mission-bench-load-"))
    server, stack = _stack(home)
    try:
        result = _burst(stack, GOALS, WATCHERS)
        with stack.client() as client:
            states = [
                client.get(f"/task/{run_id}/progress").json()["state"] for run_id in result.run_ids
            ]
        caught_up = recorded(server.api_url, result.run_ids)
    finally:
        stop_stack(stack)
        server.stop()
    return {
        "seconds": result.seconds,
        "completed": states.count("Completed"),
        "watchers ended": sum(w.ended for w in result.watchers),
        "requests": len(result.latencies_ms),
        "failed requests": len(result.failed_requests),
        "p50": result.median_ms,
        "p95": result.p(0.95),
        "p99": result.p(0.99),
        "max": max(result.latencies_ms),
        "submit": _percentiles(result.submit_ms),
        "recorder caught up": caught_up,
        **_lock_errors(home),
    }


def _processes(server: Any, stack: Any) -> dict[str, Any]:
    import psutil

    api = psutil.Process(stack.process.pid)
    runner = next(c for c in api.children() if "flows.serve" in " ".join(c.cmdline()))
    return {
        "Prefect server": psutil.Process(server.process.pid),
        "API (mission up)": api,
        "runner": runner,
    }


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    xs, ys = [t / 60 for t, _ in samples], [m for _, m in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / den


def run_soak(minutes: float, out_dir: Path) -> dict[str, Any]:
    from tests.stack import stop_stack

    home = Path(tempfile.mkdtemp(prefix="mission-bench-soak-"))
    server, stack = _stack(home)
    memory: dict[str, list[tuple[float, float]]] = {}
    done = threading.Event()
    started = time.monotonic()
    processes = _processes(server, stack)

    def sample() -> None:
        while not done.is_set():
            at = time.monotonic() - started
            for name, process in processes.items():
                rss = process.memory_info().rss / 2**20
                memory.setdefault(name, []).append((at, rss))
            done.wait(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    bursts = goal_runs = completed = 0
    submit_ms: list[float] = []
    burst_s: list[float] = []
    stopped_by: str | None = None
    try:
        while time.monotonic() - started < minutes * 60:
            try:
                result = _burst(stack, SOAK_GOALS, SOAK_WATCHERS)
            except Exception as exc:  # reported in the table, not hidden
                stopped_by = f"{type(exc).__name__}: {exc}"
                print(f"  soak stopped: {stopped_by}", flush=True)
                break
            submit_ms += result.submit_ms
            burst_s.append(result.seconds)
            bursts += 1
            goal_runs += len(result.run_ids)
            completed += sum(
                w.ended and w.docs[-1]["state"] == "Completed"
                for w in result.watchers[: len(result.run_ids)]
            )
            print(f"  soak: {bursts} bursts, {goal_runs} goal runs", flush=True)
    finally:
        done.set()
        sampler.join()
        stop_stack(stack)
        server.stop()
    _plot(memory, out_dir / "soak_memory.png")
    _save_samples(memory, out_dir / "soak_memory.csv")
    trend = {}
    for name, samples in memory.items():
        warm = [(t, m) for t, m in samples if t >= WARM_UP_S]
        half = samples[-1][0] / 2
        trend[name] = {
            "first": statistics.median(m for t, m in samples if t < 60),
            "after warm-up": warm[0][1],
            "last": statistics.median(m for t, m in samples[-6:]),
            "slope": _slope_mb_per_min(warm),
            "second half slope": _slope_mb_per_min([(t, m) for t, m in samples if t >= half]),
        }
    return {
        "minutes": (time.monotonic() - started) / 60,
        "bursts": bursts,
        "goal runs": goal_runs,
        "completed": completed,
        "trend": trend,
        "submit": _percentiles(submit_ms),
        "burst seconds": {
            "median": statistics.median(burst_s or [float("nan")]),
            "max": max(burst_s or [float("nan")]),
        },
        "stopped by": stopped_by,
        **_lock_errors(home),
    }


def _save_samples(memory: dict[str, list[tuple[float, float]]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["process,seconds,rss_mb"]
    for name, samples in memory.items():
        rows += [f"{name},{t:.1f},{m:.2f}" for t, m in samples]
    path.write_text("\n".join(rows) + "\n")


def _plot(memory: dict[str, list[tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, samples in memory.items():
        ax.plot([t / 60 for t, _ in samples], [m for _, m in samples], label=name)
    ax.axvline(WARM_UP_S / 60, color="#999", linestyle=":", linewidth=1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title("Soak: memory of each long-lived process")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    burst: dict[str, Any], soak: dict[str, Any] | None, out: Path, minutes: float
) -> None:
    import prefect

    lines = [
        "## 4. Load and soak on the default stack",
        "",
        f"Rewritten by `.venv/bin/python -m bench.load --minutes {minutes:g}` (`scripts/bench` "
        "runs it with a 15-minute soak).",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}; models simulated "
        "(100 ms a call).",
        "Stack: `mission up` (runner + API) on a Prefect server on SQLite, default settings",
        "(`MISSION_RUNNER_LIMIT` = 4 per core) but for the active-run cap, raised to 40.",
        "",
        f"**Burst.** {GOALS} goal runs of 20 subtasks (5 layers of 4) posted at once, "
        f"{WATCHERS} SSE",
        "watchers spread over them, and `GET /task/{id}/progress` timed every 0.2 s (round",
        "robin over the runs) until every watcher had its `end`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| goal runs completed | {burst['completed']} of {GOALS} |",
        f"| watchers that got the final document and `end` | {burst['watchers ended']} of "
        f"{WATCHERS} |",
        f"| time from the first POST to the last `end` | {burst['seconds']:.1f} s |",
        f"| GET progress: requests, failed | {burst['requests']}, {burst['failed requests']} |",
        f"| GET progress latency p50 / p95 / p99 / max | {burst['p50']:.0f} / {burst['p95']:.0f}"
        f" / {burst['p99']:.0f} / {burst['max']:.0f} ms |",
        f"| POST /task/compound p50 / p95 / max | {_ms(burst['submit'])} |",
        f"| Prefect requests answered 503 (SQLite busy) and retried | "
        f"{burst['retried requests']} |",
        f'| lines saying "database is locked" in the Prefect server\'s log | '
        f"{burst['locked lines']} |",
        f"| other errors in the Prefect server's log | {burst['other errors']} |",
        "",
    ]
    if soak is not None:
        lines += [
            f"**Soak.** Bursts of {SOAK_GOALS} goal runs with {SOAK_WATCHERS} watchers, back to "
            f"back for {soak['minutes']:.1f} minutes: {soak['bursts']} bursts, "
            f"{soak['goal runs']} goal runs ({soak['completed']} completed as seen by their",
            f"first watcher); {soak['retried requests']} Prefect requests retried after a busy "
            f'SQLite, {soak["locked lines"]} lines saying "database is locked" '
            f"and {soak['other errors']} other errors in its log. Resident memory, sampled "
            f"every {SAMPLE_EVERY_S:.0f} s; the slope is a least-squares fit after the first "
            f"{WARM_UP_S / 60:.0f} minutes.",
            "",
            f"Each burst took {soak['burst seconds']['median']:.0f} s at the median and "
            f"{soak['burst seconds']['max']:.0f} s at the most; `POST /task/compound` answered in "
            f"{_ms(soak['submit'])} (p50 / p95 / max)."
            + (f" The soak stopped early: {soak['stopped by']}." if soak["stopped by"] else "")
            + (
                " The slowest waited out a stalled write: Prefect's server on SQLite lets a"
                " write wait up to 60 s (its busy timeout) for another to let go."
                if soak["submit"]["max"] >= 55_000
                else ""
            ),
            *(
                [
                    "Errors in the Prefect server's log other than retried requests:",
                    "",
                    *(f"- `{line[:160]}`" for line in soak["other error lines"]),
                ]
                if soak["other error lines"]
                else []
            ),
            "",
            "| process | first minute | at 2 min | last minute | slope after warm-up | slope over"
            " the second half |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in soak["trend"].items():
            lines.append(
                f"| {name} | {row['first']:.0f} MB | {row['after warm-up']:.0f} MB | "
                f"{row['last']:.0f} MB | {row['slope']:+.2f} MB/min | "
                f"{row['second half slope']:+.2f} MB/min |"
            )
        lines += [
            "",
            "![soak memory](bench/soak_memory.png)",
            "",
            "The samples behind the plot: [bench/soak_memory.csv](bench/soak_memory.csv).",
            "",
        ]
    write_section(out, LOAD, lines)
    print("\n".join(lines))


def _ms(p: dict[str, float]) -> str:
    return f"{p['p50']:.0f} / {p['p95']:.0f} / {p['max']:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0, help="soak length (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    print(f"burst: {GOALS} goal runs, {WATCHERS} watchers", flush=True)
    burst = run_burst()
    print(f"  {burst}", flush=True)
    soak = None
    if args.minutes > 0:
        print(f"soak: {args.minutes:g} minutes", flush=True)
        soak = run_soak(args.minutes, args.out.parent / "bench")
    write_report(burst, soak, args.out, args.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
