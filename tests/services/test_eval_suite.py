"""The evaluation suite's data: every goal answerable from its corpus, every decoy real."""

from __future__ import annotations

import pytest

from core.plan import BASE_KINDS, PlanLimits, validate_plan
from core.settings import DEFAULT_TIERS
from services.eval_suite import CORPUS, EvalGoal, load_suite, ready_plan
from services.evaluation import states
from tasks.retrievers.corpus import CorpusRetriever

SUITE = load_suite()


def corpus_texts() -> list[str]:
    retriever = CorpusRetriever(CORPUS)
    return [f"{d.title}\n{d.text}" for d in retriever.index()]


@pytest.mark.parametrize("goal", SUITE.goals, ids=lambda g: g.id)
def test_every_fact_and_every_decoy_is_stated_by_some_corpus_document(goal: EvalGoal) -> None:
    texts = corpus_texts()
    for name, spellings in [*goal.expected.items(), *goal.decoys.items()]:
        assert any(states(text, spellings) for text in texts), f"{goal.id}: {name}"


def test_no_goal_gives_its_answer_away() -> None:
    for goal in SUITE.goals:
        for spellings in [*goal.expected.values(), *goal.decoys.values()]:
            assert not states(goal.goal, spellings), goal.id


def test_the_corpus_is_read_whole_with_nothing_skipped() -> None:
    retriever = CorpusRetriever(CORPUS)
    assert len(retriever.index()) == len([p for p in CORPUS.iterdir() if p.is_file()])
    assert retriever.problems() == {}


def test_a_ready_plan_is_a_valid_research_plan() -> None:
    limits = PlanLimits(tiers=frozenset(DEFAULT_TIERS), kinds=BASE_KINDS | {"search"})
    plan = validate_plan(ready_plan(SUITE.goals[0].goal), limits)
    assert plan.topological_order()[0].kind == "search"
    assert [s.kind for s in plan.sinks()] == ["write"]
