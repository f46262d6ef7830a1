"""Load on the default SQLite stack: 30 goal runs of 20 subtasks at once, 100 SSE watchers.
Every run ends, nothing a watcher should have seen is missing, and SQLite never locks up."""

from __future__ import annotations

import re

import pytest

from core.local_server import PrefectServer
from tests.load import burst, layered_plan, recorded
from tests.stack import free_port, start_stack, stop_stack

pytestmark = pytest.mark.slow
GOALS, WATCHERS = 30, 100


def _comparable(doc: dict) -> dict:
    """What a watcher must not miss: states, learned lines, result, usage (the timestamps of
    a finished document may still be refined from the database's own records)."""
    return {
        "state": doc["state"],
        "counts": doc["counts"],
        "subtasks": [(s["id"], s["state"], s["learned"], s["error"]) for s in doc["subtasks"]],
        "learned": [(item["subtask"], item["text"]) for item in doc["learned"]],
        "result": doc["result"],
        "usage": doc["usage"],
    }


def test_thirty_goal_runs_and_a_hundred_watchers_all_end_with_nothing_lost(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("load")
    # The server logs every request it answers 503 to be retried (SQLite was busy), too.
    monkeypatch.setenv("PREFECT_API_LOG_RETRYABLE_ERRORS", "true")
    server = PrefectServer(home=home, port=free_port()).start()
    stack = start_stack(
        server.api_url,
        MISSION_HOME=str(home),
        MISSION_PROVIDER="simulated",  # labelled in every document; no fake server in the way
        MISSION_SIMULATED_LATENCY_MS="default=100",
        MISSION_MAX_ACTIVE_RUNS=str(GOALS + 10),
        # Every watcher here is the same client (one token): the load is many people's.
        MISSION_MAX_STREAMS_PER_CLIENT=str(WATCHERS),
    )
    try:
        # Submissions queue behind each other on two busy cores: their time is the bench's to
        # measure (python -m bench.load), this test's is that each one is answered.
        result = burst(
            stack, GOALS, WATCHERS, layered_plan(layers=5, width=4), submit_timeout_s=120
        )
        with stack.client() as client:
            finals = {
                run_id: client.get(f"/task/{run_id}/progress").json() for run_id in result.run_ids
            }
        recorded(server.api_url, result.run_ids)  # before the server stops
    finally:
        stop_stack(stack)
        # What the server logged while it served the load. Stopping it cancels Prefect's
        # task-run recorder in the middle of a flush, which it logs as an error of its own.
        server_log = (home / "prefect-server.log").read_text()
        server.stop()

    # The API's answer times under this load are measured by `python -m bench.load`.
    assert [d["state"] for d in finals.values()] == ["Completed"] * GOALS
    assert all(
        d["counts"]["completed"] == 20 and d["provider"] == "simulated" for d in finals.values()
    )
    assert result.failed_requests == []
    for watcher in result.watchers:
        assert watcher.ended, (watcher.run_id, watcher.error, watcher.reconnects)
        # The last document a watcher got is the run's final one: nothing after it was lost.
        assert _comparable(watcher.docs[-1]) == _comparable(finals[watcher.run_id])
        states = [d["counts"]["completed"] for d in watcher.docs]
        assert states == sorted(states)  # progress never went backwards
    # SQLite took every write at the first try: no request answered 503 for a busy database,
    # nothing Prefect does in the background (state validation, event consumers, services)
    # failed on a lock, and no write transaction gave up waiting for its turn
    # (core/prefect_sqlite.py).
    problems = [
        line
        for line in server_log.splitlines()
        if re.match(r"^[\d:.]+ \| (ERROR|WARNING|CRITICAL) ", line)
    ]
    assert problems == []
    assert "database is locked" not in server_log
    assert "database is locked" not in (home / "runner.log").read_text()
