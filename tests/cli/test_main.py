"""The `mission` command: exit codes, one-line reasons, and a whole goal run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from cli.main import main
from core.progress import ProgressDocument
from tests.stack import free_port

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


def test_a_timeline_file_that_is_not_svg_exits_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "a goal", "--timeline", str(tmp_path / "t.png")]) == 2
    assert "--timeline writes SVG" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()


def test_an_empty_goal_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "   "]) == 2
    assert capsys.readouterr().err == "mission: the goal is empty\n"


def simulated_env() -> dict[str, str]:
    env = dict(os.environ, MISSION_PROVIDER="simulated", MISSION_SIMULATED_LATENCY_MS="default=30")
    env.pop("ANTHROPIC_API_KEY", None)
    return env


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_mission_run_json_completes_on_the_simulated_provider(tmp_path: Path) -> None:
    timeline = tmp_path / "timeline.svg"
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", GOAL, "--json", "--timeline", str(timeline)],
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
    # --timeline: the same run as an SVG Gantt chart, a bar per subtask, a lane per tier.
    svg = ElementTree.parse(timeline).getroot()
    print([(s.id, s.started_at, s.ended_at) for s in doc.subtasks])
    bars = svg.findall(".//{*}rect[@data-subtask]")
    assert sorted(b.get("data-subtask") for b in bars) == sorted(s.id for s in doc.subtasks)
    assert {t.text for t in svg.findall(".//{*}text[@class='lane']")} == {
        "fast",
        "structured",
        "deep",
        "writer",
    }
    assert any(b.get("data-critical") == "true" for b in bars)


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_ctrl_c_stops_the_goal_run_at_once_and_prints_it_cancelled(
    tmp_path: Path, fake_anthropic: Any
) -> None:
    import signal
    import time

    from tests.api.conftest import wait_until_called

    fake_anthropic.on("Subtask id: slow\n", delay=60)
    plan = {"goal": "interrupt me", "subtasks": [sub("quick"), sub("slow"), sub("after", "slow")]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", "--plan", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until_called(fake_anthropic, "Subtask id: slow\n", within_s=60)
    while not any(c.end for c in fake_anthropic.calls_for("Subtask id: quick\n")):
        time.sleep(0.05)
    time.sleep(0.5)  # its reply reaches the goal run
    process.send_signal(signal.SIGINT)
    interrupted = time.time()
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1, err
    doc = ProgressDocument.model_validate_json(out)
    assert doc.state == "Cancelled", doc.message
    assert {s.id: s.state for s in doc.subtasks} == {
        "quick": "Completed",
        "slow": "Cancelled",
        "after": "Cancelled",
    }
    (slow,) = fake_anthropic.calls_for("Subtask id: slow\n")
    assert slow.aborted is not None and slow.aborted - interrupted < 0.5
    assert [c for c in fake_anthropic.calls if c.start > interrupted] == []


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_mission_run_shows_a_revision_the_simulated_joiner_asked_for() -> None:
    """The simulated joiner asks for more when the goal says "deeper"; the simulated
    replanner adds a subtask, which the live view marks +; one revision, as the bound says."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "Research the top 2 tools, deeper"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**simulated_env(), "COLUMNS": "140"},
    )
    assert done.returncode == 0, done.stderr
    assert "+deeper_1" in done.stdout and "plan revision 1" in done.stdout
    assert "deeper_2" not in done.stdout  # MISSION_MAX_REPLANS=1: one revision only


@pytest.mark.slow
def test_a_failed_mission_run_json_ends_without_prefect_tracebacks_or_log_shipping(
    tmp_path: Path,
) -> None:
    """`mission run` starts and stops its own Prefect server here, as it does for a user;
    stderr must not end with Prefect's tracebacks or its logs shipped to a stopped server."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"goal": "fail at once", "subtasks": [sub("a")]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MISSION_"))}
    env.update(
        MISSION_HOME=str(tmp_path / "home"),
        MISSION_PROVIDER="anthropic",
        MISSION_PREFECT_PORT=str(free_port()),
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",  # nothing listens: every call fails
        MISSION_SDK_MAX_RETRIES="0",
        MISSION_SUBTASK_RETRIES="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--plan", str(plan), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 1
    assert ProgressDocument.model_validate_json(done.stdout).state == "Failed"
    assert "Error logging to API" not in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_mission_run_json_has_every_start_and_end_of_a_chain_of_fast_subtasks(
    tmp_path: Path,
) -> None:
    """The document printed as the run ends is exact: task run times reach the server's
    database a moment later, so the flow's outcome table carries each start and end."""
    chain = [sub("s0")] + [sub(f"s{i}", f"s{i - 1}") for i in range(1, 12)]
    plan = tmp_path / "chain.json"
    plan.write_text(json.dumps({"goal": "a chain of fast subtasks", "subtasks": chain}))
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--plan", str(plan), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env={**simulated_env(), "MISSION_SIMULATED_LATENCY_MS": "default=0"},
    )
    assert done.returncode == 0, done.stderr
    doc = ProgressDocument.model_validate_json(done.stdout)
    assert doc.counts.completed == 12
    missing = [s.id for s in doc.subtasks if s.started_at is None or s.ended_at is None]
    assert missing == []
    assert all(s.started_at <= s.ended_at for s in doc.subtasks if s.started_at and s.ended_at)
