"""The evaluation suite `mission eval` runs: goals over a local corpus with known answers.

The goals, their expected facts and the decoys live in `eval_data/suite.json`; the corpus the
goals are about (a fictional electric cargo bike market with stale, wrong and near-miss
pages among the right ones) is the folder `eval_data/corpus`, searched with
`MISSION_SEARCH_CORPUS` during an evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.gateway.simulated import research_plan

DATA = Path(__file__).resolve().parent / "eval_data"
CORPUS = DATA / "corpus"
SUITE_FILE = DATA / "suite.json"


class EvalGoal(BaseModel):
    """One goal of the suite: the facts a correct answer states (each by name, with the
    spellings that count) and the decoys it must not state."""

    id: str
    goal: str
    expected: dict[str, list[str]] = Field(min_length=1)
    decoys: dict[str, list[str]] = Field(default_factory=dict)


class Suite(BaseModel):
    about: str = ""
    goals: list[EvalGoal] = Field(min_length=1)


def load_suite(path: Path = SUITE_FILE) -> Suite:
    return Suite.model_validate_json(path.read_text(encoding="utf-8"))


def ready_plan(goal: str) -> dict[str, Any]:
    """A plan for a suite goal that needs no planner: search the corpus, read the first hits
    side by side, write the answer; the shape the planner is taught for research (and the
    simulated planner's research plan). For endpoints whose planner cannot plan, and to
    compare endpoints on the same plan."""
    return research_plan(goal)
