"""Streamed output benchmark: `python -m bench.streaming` measures how soon a subtask's text
reaches a page and what streaming costs the Prefect database, and rewrites its section of
docs/benchmarks.md.

1. Delta push latency: from the fake Messages server's write of each piece of a streamed
   reply (subtasks writing at once, each in many pieces) to an SSE client of
   `GET /task/{id}/events` reading that text in a `delta` message. Side by side: the path
   the text took before streaming (the reply's last byte to the SSE document that shows the
   subtask Completed, whose output the page then fetches), and the ideal (0 ms).
2. Rows the Prefect server wrote to its database per goal run, the same goal runs with
   `MISSION_STREAM_OUTPUT` on and off: deltas take a side channel, never the database.

One `mission up` (runner + API) per mode on its own Prefect server on SQLite; the real
anthropic SDK calls the fake Messages server (tests/fakes) on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import STREAMING, write_section
from bench.start_stop import fake_models
from core.stream import partial_string
from tests.load import percentile

ROOT = Path(__file__).resolve().parent.parent
SUBTASKS = 4  # writing at once
WRITING_S = 3.0
# Pieces per reply: faster than the 10 deltas a second a subtask may send (the throttle's
# wait shows), and slower (the push alone shows).
FAST, SLOW = 40, 15


def _plan(run: int) -> dict[str, Any]:
    return {
        "subtasks": [
            {
                "id": f"w{run}_{i}",
                "title": f"writer {i}",
                "instruction": f"write part {i}",
                "kind": "write",
                "tier": "fast",
            }
            for i in range(SUBTASKS)
        ]
    }


def _answer(sid: str) -> dict[str, str]:
    words = " ".join(f"{sid}-word{i}" for i in range(150))
    return {"output": f"## {sid}\n\n{words}\n", "learned": f"{sid} wrote its part"}


def _rows(database: Path) -> dict[str, int]:
    """The rows of each table of the Prefect server's SQLite database."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {t: db.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}


def _watch(stack: Any, run_id: str) -> list[tuple[float, str, dict[str, Any]]]:
    """Every `delta` and `progress` message of the run's stream, with when it was read."""
    from tests.stack import sse_events

    seen: list[tuple[float, str, dict[str, Any]]] = []
    with (
        stack.client() as client,
        client.stream("GET", f"/task/{run_id}/events", timeout=120) as response,
    ):
        for event in sse_events(response):
            kind = event.get("event", "")
            if kind == "end":
                break
            if kind in ("delta", "progress"):
                seen.append((time.time(), kind, json.loads(event["data"])))
    return seen


def _latencies(fake: Any, seen: list[tuple[float, str, dict[str, Any]]], sid: str) -> list[float]:
    """For each piece that added to `sid`'s text: its write to the first delta that had it."""
    call = fake.calls_for(f"Subtask id: {sid}\n")[-1]
    received: list[tuple[float, int]] = []
    text = ""
    for at, kind, data in seen:
        if kind == "delta" and data["subtask"] == sid:
            text = data["text"] if data.get("restart") else text + data["text"]
            received.append((at, len(text)))
    latencies, before = [], 0
    for written_at, sent in call.chunks:
        length = len(partial_string(sent))
        if length == before:
            continue  # a piece of the JSON around the text
        before = length
        read_at = next((at for at, n in received if n >= length), None)
        if read_at is not None:
            latencies.append((read_at - written_at) * 1000)
    return latencies


def _until_completed(seen: list[tuple[float, str, dict[str, Any]]], sid: str) -> float | None:
    for at, kind, data in seen:
        if kind == "progress" and any(
            s["id"] == sid and s["state"] == "Completed" for s in data["subtasks"]
        ):
            return at
    return None


def measure(fake: Any, streaming: bool, runs: int, pieces: int) -> dict[str, Any]:
    from core.local_server import PrefectServer
    from tests.stack import free_port, start_stack, stop_stack

    fake.stream_chunks = pieces
    home = Path(tempfile.mkdtemp(prefix="mission-bench-stream-"))
    server = PrefectServer(home=home, port=free_port()).start()
    os.environ["PREFECT_API_AUTH_STRING"] = server.auth
    stack = start_stack(
        server.api_url,
        MISSION_HOME=str(home),
        MISSION_PROVIDER="anthropic",
        MISSION_STREAM_OUTPUT=str(streaming).lower(),
        MISSION_TIER_LIMITS=f"fast={SUBTASKS}",
    )
    database = home / "prefect" / "prefect.db"
    figures: dict[str, Any] = {"push": [], "completed": [], "first text": []}
    try:
        for run in range(runs + 1):  # run 0 warms the stack up, unmeasured
            plan = _plan(run)
            for s in plan["subtasks"]:
                answer = _answer(s["id"])
                fake.on(f"Subtask id: {s['id']}\n", delay=WRITING_S, tool_input=answer)
            if run == 1:
                time.sleep(5)  # what the warm-up run still writes (logs, events) lands
                rows_before = _rows(database)
            run_id = stack.submit(goal=f"stream {streaming} {run}", plan=plan)
            seen = _watch(stack, run_id)
            if run == 0:
                continue
            for s in plan["subtasks"]:
                sid = s["id"]
                call = fake.calls_for(f"Subtask id: {sid}\n")[-1]
                figures["push"].extend(_latencies(fake, seen, sid))
                done = _until_completed(seen, sid)
                if done is not None:
                    figures["completed"].append((done - call.end) * 1000)
                first = next(
                    (at for at, kind, d in seen if kind == "delta" and d["subtask"] == sid), done
                )
                if first is not None:
                    figures["first text"].append((first - call.start) * 1000)
        time.sleep(5)  # what the last run still writes (logs, events) lands
        after = _rows(database)
        figures["rows"] = {t: (n - rows_before.get(t, 0)) / runs for t, n in after.items()}
    finally:
        stop_stack(stack)
        server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="goal runs per mode")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    fake = fake_models()
    try:
        print(f"streaming on, {FAST} pieces a reply", flush=True)
        on = measure(fake, True, args.runs, FAST)
        print(f"streaming on, {SLOW} pieces a reply", flush=True)
        slow = measure(fake, True, args.runs, SLOW)
        print("streaming off", flush=True)
        off = measure(fake, False, args.runs, FAST)
    finally:
        fake.stop()
    write_report(args.out, on, slow, off, args.runs)
    return 0


def _ms(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    return (
        f"{statistics.median(values):.0f} ms | {percentile(values, 0.95):.0f} ms | "
        f"{max(values):.0f} ms"
    )


def write_report(
    out: Path, on: dict[str, Any], slow: dict[str, Any], off: dict[str, Any], runs: int
) -> None:
    import prefect

    tables = sorted(
        (t for t in off["rows"] if off["rows"][t] or on["rows"].get(t)),
        key=lambda t: -off["rows"][t],
    )

    def total(rows: dict[str, float]) -> float:
        return sum(rows.values())

    lines = [
        "## 7. Streamed output: from the model's pen to the page",
        "",
        "Rewritten by `.venv/bin/python -m bench.streaming` (also run by `scripts/bench`).",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}.",
        f"{runs} goal runs per mode of {SUBTASKS} subtasks writing at once, each reply streamed",
        f"by the fake Messages server over {WRITING_S:g} s; an SSE client",
        "reads `GET /task/{id}/events` throughout. `mission up` on its own Prefect server",
        "(SQLite) per mode, in the same run.",
        "",
        "| path of a subtask's text to the page | median | p95 | max |",
        "|---|---|---|---|",
        f"| streamed, {FAST} pieces a reply ({FAST / WRITING_S:.0f} a second): a piece's write "
        f"-> the SSE `delta` with it (ours) | {_ms(on['push'])} |",
        f"| streamed, {SLOW} pieces a reply ({SLOW / WRITING_S:.0f} a second): the same "
        f"(ours) | {_ms(slow['push'])} |",
        "| before streaming: the reply's end -> the SSE document showing it Completed | "
        f"{_ms(off['completed'])} |",
        "| ideal | 0 ms | 0 ms | 0 ms |",
        "",
        "And from the request's start to the first of its text on the page: "
        f"{_ms(on['first text']).split(' | ')[0]} streamed, "
        f"{_ms(off['first text']).split(' | ')[0]} without (the whole reply's "
        f"{WRITING_S:g} s, then the document).",
        "",
        "Target: push p95 <= 100 ms. Deltas are throttled to 10 a second per subtask: at",
        f"{FAST / WRITING_S:.0f} pieces a second a piece waits up to 100 ms for its turn, and",
        "that wait is in the first row; at 5 a second nothing waits, and the second row is",
        "the push alone.",
        "",
        "**Rows the Prefect server wrote per goal run** (the rows of each table of its SQLite",
        f"database after the {runs} runs, less those before, over {runs}; a row updated in",
        "place, as a flow run's own state, is not counted):",
        "",
        "| table | streaming on (13 a second) | on (5 a second) | off |",
        "|---|---|---|---|",
        *(
            f"| {t} | {on['rows'].get(t, 0):.1f} | {slow['rows'].get(t, 0):.1f} | "
            f"{off['rows'][t]:.1f} |"
            for t in tables
        ),
        f"| **all** | {total(on['rows']):.1f} | {total(slow['rows']):.1f} | "
        f"{total(off['rows']):.1f} |",
        "",
    ]
    write_section(out, STREAMING, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
