"""Scoring for `mission eval`: facts and decoys in an answer, citation validity, speedup,
what routing saves, and a run's score read from its progress document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.citations import CitationFlag, CitationReport
from core.progress import Counts, ProgressDocument, SubtaskProgress, UsageReport
from services.eval_suite import EvalGoal
from services.evaluation import (
    ConfigurationScore,
    GoalScore,
    RunScore,
    answer_body,
    citation_validity,
    routing_saves,
    score_answer,
    score_configuration,
    score_run,
    speedup,
    states,
    suite_speedup,
)

GOAL = EvalGoal(
    id="velocargo-lead",
    goal="Who runs Velocargo, and where is it based?",
    expected={"chief executive": ["Marit Janssen"], "headquarters": ["Utrecht"]},
    decoys={"former chief executive": ["Pieter de Wit"], "namesake's city": ["Hamburg"]},
)


def test_an_answer_scores_the_facts_it_states_and_the_decoys_it_states() -> None:
    answer = "Velocargo is run by **Pieter de Wit** from its head office in Utrecht [1]."
    score = score_answer(answer, GOAL)
    assert score.found == ["headquarters"]
    assert score.missing == ["chief executive"]
    assert score.decoys == ["former chief executive"]
    assert score.accuracy == 0.5


def test_a_fact_counts_in_any_of_its_spellings_ignoring_case_and_spacing() -> None:
    goal = EvalGoal(id="w", goal="warranty?", expected={"warranty": ["seven-year", "7 years"]})
    assert score_answer("A  7\nYEARS warranty.", goal).found == ["warranty"]
    assert score_answer("Seven-Year cover", goal).accuracy == 1.0
    assert score_answer("a six-year warranty", goal).missing == ["warranty"]


@pytest.mark.parametrize(
    ("text", "spelling", "stated"),
    [
        ("founded in 2011.", "2011", True),
        ("order 20110 arrived", "2011", False),
        ("opens at 06:30", "6:30", False),
        ("opens at 6:30", "6:30", True),
        ("costs €3,650 with VAT", "€3,650", True),
        ("costs €3,6500", "€3,650", False),
        ("Amélie Rousset", "amélie rousset", True),
    ],
)
def test_facts_are_matched_as_whole_words(text: str, spelling: str, stated: bool) -> None:
    assert states(text, [spelling]) is stated


def test_the_sources_list_and_the_flags_note_are_not_part_of_the_answer() -> None:
    result = (
        "Marit Janssen runs Velocargo [1].\n\n"
        "⚠ 1 of 2 citations could not be verified:\n\n- [2] in join: Hamburg is not quoted\n\n"
        "## Sources\n\n- [1] Velocargo\n- [2] Velocargo names Pieter de Wit chief executive"
    )
    assert answer_body(result) == "Marit Janssen runs Velocargo [1]."
    score = score_answer(result, GOAL)
    assert score.found == ["chief executive"] and score.decoys == []


def test_citation_validity_is_verified_over_all_and_none_without_citations() -> None:
    flagged = [CitationFlag(source=9, subtask="join", reason="never given")]
    assert citation_validity(CitationReport(total=4, verified=3, flagged=flagged)) == 0.75
    assert citation_validity(CitationReport()) is None


def run(
    routing: str = "configured", schedule: str = "as planned", wall_s: float = 1.0, **extra: object
) -> RunScore:
    return RunScore.model_validate(
        {"routing": routing, "schedule": schedule, "wall_s": wall_s, **extra}
    )


def test_speedup_is_the_time_with_concurrency_1_over_the_time_as_planned() -> None:
    assert speedup(6.0, 2.0) == 3.0
    assert speedup(1.0, 0.0) is None
    goal = GoalScore(
        id="g", goal="g", plan_from="suite",
        runs=[run(wall_s=2.0), run(schedule="concurrency 1", wall_s=5.0)],
    )  # fmt: skip
    assert goal.speedup == 2.5


def test_no_speedup_is_claimed_when_either_run_failed() -> None:
    goal = GoalScore(
        id="g", goal="g", plan_from="suite",
        runs=[run(wall_s=2.0), run(schedule="concurrency 1", wall_s=9.0, error="boom")],
    )  # fmt: skip
    assert goal.speedup is None
    fine = GoalScore(
        id="h", goal="h", plan_from="suite",
        runs=[run(wall_s=1.0), run(schedule="concurrency 1", wall_s=3.0)],
    )  # fmt: skip
    # The suite's speedup comes from the goals where both runs completed: 3 s over 1 s.
    assert suite_speedup([goal, fine]) == 3.0


def configuration(cost: float | None) -> ConfigurationScore:
    return ConfigurationScore(
        routing="configured", schedule="as planned", runs=1, completed=1, with_result=1,
        accuracy=1.0, decoys_stated=0, decoys_total=1, citations_total=0,
        citations_verified=0, citation_validity=None, cost_usd=cost, wall_s=1.0,
    )  # fmt: skip


def test_routing_saves_the_share_of_the_all_deep_cost_not_spent() -> None:
    assert routing_saves(configuration(0.25), configuration(1.0)) == 0.75
    assert routing_saves(configuration(None), configuration(1.0)) is None
    assert routing_saves(configuration(0.25), configuration(0.0)) is None


def test_a_configuration_adds_up_its_runs_and_an_unpriced_run_leaves_cost_unknown() -> None:
    goals = [
        GoalScore(id=GOAL.id, goal=GOAL.goal, plan_from="suite", runs=[run(
            goal_run_id="a", accuracy=0.5, cost_usd=0.5, citations_total=4, citations_verified=3,
            answer={"found": ["headquarters"], "missing": ["chief executive"],
                    "decoys": ["namesake's city"]},
        )]),
        GoalScore(id=GOAL.id, goal=GOAL.goal, plan_from="suite", runs=[run(
            goal_run_id="b", cost_usd=None, error="Failed", wall_s=3.0,
        )]),
    ]  # fmt: skip
    scored = score_configuration(goals, {GOAL.id: GOAL}, "configured", "as planned")
    assert scored is not None
    assert (scored.runs, scored.completed, scored.with_result) == (2, 1, 1)
    assert scored.accuracy == 0.25  # the run without an answer scores 0
    assert (scored.decoys_stated, scored.decoys_total) == (1, 4)
    assert scored.citation_validity == 0.75
    assert scored.cost_usd is None
    assert scored.wall_s == 4.0
    assert score_configuration(goals, {GOAL.id: GOAL}, "deep", "as planned") is None


def test_a_run_is_scored_from_its_progress_document() -> None:
    doc = ProgressDocument(
        id="0b7c", goal=GOAL.goal, state="Failed", message="1 subtask(s) failed (read_2)",
        created_at=datetime.now(UTC), updated_at=None, prefect_url="", provider="simulated",
        counts=Counts(total=5, completed=4, failed=1),
        subtasks=[SubtaskProgress(id="read_2", title="Read", kind="browse", tier="vision",
                                  state="Failed", error="ran out of tokens")],
        result="Marit Janssen leads it from Utrecht [1].\n\n## Sources\n\n- [1] Velocargo",
        citations=CitationReport(total=2, verified=2),
        usage=UsageReport(input_tokens=900, output_tokens=120, cost_usd=0.0123),
    )  # fmt: skip
    score = score_run(doc, GOAL, "deep", "as planned", 4.5)
    assert score.goal_run_id == "0b7c" and score.routing == "deep"
    assert score.error == "1 subtask(s) failed (read_2)"
    assert (score.subtasks_completed, score.subtasks_total) == (4, 5)
    assert score.subtask_errors == ["read_2: ran out of tokens"]
    assert score.accuracy == 1.0 and score.answer is not None and score.answer.decoys == []
    assert score.citation_validity == 1.0
    assert (score.cost_usd, score.input_tokens, score.output_tokens) == (0.0123, 900, 120)
    assert score.wall_s == 4.5
