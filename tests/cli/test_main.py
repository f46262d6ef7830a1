"""The `mission` command: exit codes, one-line reasons, and a whole goal run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from core.progress import ProgressDocument

GOAL = "Research the top 5 competitors in this space and write a summary"


def sub(id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "title": id,
        "instruction": f"do {id}",
        "kind": "extract",
        "tier": "fast",
        "depends_on": list(deps),
        **extra,
    }


BAD_PLANS: dict[str, Any] = {
    "not json": "{oops",
    "duplicate id": {"goal": "g", "subtasks": [sub("a"), sub("a")]},
    "unknown dependency": {"goal": "g", "subtasks": [sub("a", "nope")]},
    "self dependency": {"goal": "g", "subtasks": [sub("a", "a")]},
    "cycle": {"goal": "g", "subtasks": [sub("a", "b"), sub("b", "a")]},
    "unknown kind": {"goal": "g", "subtasks": [sub("a", kind="juggle")]},
    "unknown tier": {"goal": "g", "subtasks": [sub("a", tier="galaxy")]},
    "empty instruction": {"goal": "g", "subtasks": [sub("a", instruction="")]},
    "too many subtasks": {"goal": "g", "subtasks": [sub(f"s{i}") for i in range(61)]},
    "too deep": {
        "goal": "g",
        "subtasks": [sub("s0")] + [sub(f"s{i}", f"s{i - 1}") for i in range(1, 13)],
    },
    "absurd instruction": {"goal": "g", "subtasks": [sub("a", instruction="x" * 100_000)]},
    "no subtasks": {"goal": "g", "subtasks": []},
}


@pytest.mark.parametrize("kind", sorted(BAD_PLANS))
def test_an_invalid_plan_exits_2_with_a_one_line_reason(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    data = BAD_PLANS[kind]
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    assert main(["run", "--plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mission: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_the_installed_command_exits_2_for_a_missing_plan_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--plan", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("mission: cannot read plan file") and "Traceback" not in done.stderr
    )


def test_an_empty_goal_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "   "]) == 2
    assert capsys.readouterr().err == "mission: the goal is empty\n"


def simulated_env() -> dict[str, str]:
    env = dict(os.environ, MISSION_PROVIDER="simulated", MISSION_SIMULATED_LATENCY_MS="default=30")
    env.pop("ANTHROPIC_API_KEY", None)
    return env


@pytest.mark.usefixtures("prefect_server")
def test_mission_run_json_completes_on_the_simulated_provider() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", GOAL, "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=simulated_env(),
    )
    assert done.returncode == 0, done.stderr
    doc = ProgressDocument.model_validate_json(done.stdout)
    assert doc.state == "Completed" and doc.provider == "simulated"
    assert doc.counts.completed == doc.counts.total == 9
    assert doc.result and "Simulated answer" in doc.result
    assert {s.tier for s in doc.subtasks} == {"fast", "structured", "deep", "writer"}


@pytest.mark.usefixtures("prefect_server")
def test_mission_run_shows_the_subtasks_and_the_final_result() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", GOAL],
        capture_output=True,
        text=True,
        timeout=240,
        env={**simulated_env(), "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SIMULATED" in out and "Completed" in out and "research_5" in out
    assert "Result" in out and "Prefect UI: http://127.0.0.1" in out


def test_mission_plan_prints_the_validated_plan(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("MISSION_PROVIDER", "simulated")
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "default=0")
    assert main(["plan", "Compare the top 3 databases"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["goal"] == "Compare the top 3 databases"
    assert len([s for s in plan["subtasks"] if s["id"].startswith("research_")]) == 3
