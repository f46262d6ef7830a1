"""`mission eval --json` end to end on the simulated provider: the suite's goal runs happen,
and their scores are what their progress documents say."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from core.progress import ProgressDocument
from services.eval_suite import load_suite
from services.evaluation import EvalResult, score_run
from tests.cli.test_main import simulated_env


async def read(goal_run_id: str) -> ProgressDocument:
    from prefect.client.orchestration import get_client

    from services.progress import read_progress

    async with get_client() as client:
        return await read_progress(client, goal_run_id)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_mission_eval_json_scores_the_goal_runs_it_made(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "eval.md"
    argv = [sys.executable, "-m", "cli.main", "eval", "--goals", "1", "--json", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=simulated_env())
    assert done.returncode == 0, done.stderr
    result = EvalResult.model_validate_json(done.stdout)
    assert result.provider == "simulated" and result.plan_from == "planner"
    assert "mission eval --goals 1" in result.command
    (goal,) = result.goals
    suite_goal = load_suite().goals[0]
    assert goal.id == suite_goal.id and goal.subtasks > 1
    assert [(r.routing, r.schedule) for r in goal.runs] == [
        ("configured", "as planned"),
        ("configured", "concurrency 1"),
        ("deep", "as planned"),
    ]
    for run in goal.runs:
        assert run.goal_run_id is not None and run.error is None
        doc = asyncio.run(read(run.goal_run_id))
        rescored = score_run(doc, suite_goal, run.routing, run.schedule, run.wall_s)
        assert run == rescored
        # The simulated provider searched the corpus and cited what it read.
        assert any(s.url.startswith("corpus:") for s in doc.sources)
        assert run.citations_total > 0
    configured, _, deep = goal.runs
    assert configured.cost_usd is not None and deep.cost_usd is not None
    assert deep.cost_usd > configured.cost_usd  # every tier on the deep model costs more
    assert result.summary.routing_saves == pytest.approx(1 - configured.cost_usd / deep.cost_usd)
    assert goal.speedup is not None and result.summary.speedup == pytest.approx(goal.speedup)
    assert f"<!-- eval: {result.label} -->" in out.read_text()
    assert (out.parent / "eval" / "simulated-provider.svg").read_text().startswith("<svg")


def test_the_reproduce_line_carries_the_settings_that_shape_answers_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from cli.eval import reproduce

    monkeypatch.setenv("MISSION_STRUCTURED", "json_schema")
    monkeypatch.setenv("MISSION_MAX_REPLANS", "0")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-value")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8099")
    args = argparse.Namespace(
        goals=2,
        ready_plans=True,
        run_budget_s=240.0,
        label="tiny",
        out=Path("docs/eval.md"),
        json=False,
    )
    line = reproduce(args, "anthropic")
    for part in (
        "MISSION_STRUCTURED=json_schema",
        "MISSION_MAX_REPLANS=0",
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8099",
        "ANTHROPIC_API_KEY=...",
        "mission eval --goals 2 --ready-plans --run-budget-s 240 --label tiny",
    ):
        assert part in line, line
    assert "sk-secret-value" not in line
