"""docs/eval.md from an evaluation: one section per endpoint, replaced in place; the plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from services.eval_report import plot, section, write_section
from services.evaluation import EvalResult, GoalScore, RunScore, Summary


def result(label: str = "Simulated provider") -> EvalResult:
    runs = [
        RunScore(routing="configured", schedule="as planned", wall_s=2.0, cost_usd=0.01),
        RunScore(routing="configured", schedule="concurrency 1", wall_s=5.0, cost_usd=0.01),
        RunScore(
            routing="deep",
            schedule="as planned",
            wall_s=2.0,
            cost_usd=None,
            error="1 failed",
            subtask_errors=["read_1: read_1: ran out of tokens", "read_2: ran out of tokens"],
        ),
    ]
    return EvalResult(
        label=label, provider="simulated", endpoint=None, models={"fast": "m"},
        deep_model="d", plan_from="suite", started_at=datetime(2026, 1, 2, tzinfo=UTC),
        command="mission eval --goals 1",
        goals=[GoalScore(id="g1", goal="goal", plan_from="suite", runs=runs)],
        summary=Summary(configurations=[], speedup=2.5, routing_saves=None),
    )  # fmt: skip


def test_a_section_is_replaced_in_place_and_other_endpoints_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "eval.md"
    write_section(out, "A", ["first A"])
    write_section(out, "B", ["only B"])
    write_section(out, "A", ["second A"])
    text = out.read_text()
    assert text.startswith("# Evaluation\n")
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.index("second A") < text.index("only B")


def test_the_section_names_the_command_and_the_plot() -> None:
    lines = "\n".join(section(result(), "eval/simulated-provider.svg"))
    assert "    mission eval --goals 1" in lines
    assert "![wall time and cost per goal](eval/simulated-provider.svg)" in lines
    assert "2.50×" in lines
    assert "| `g1` |" in lines and "$0.0100 / unpriced" in lines


def test_the_plot_draws_a_bar_per_measured_value_and_none_for_an_unpriced_one() -> None:
    svg = ET.fromstring(plot(result()))
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("*") is not None]
    # Wall time as planned and with concurrency 1, the cost as configured; the all-deep cost is
    # unpriced, so it has no bar.
    assert len(bars) == 3
    heights = sorted(float(b.attrib["height"]) for b in bars)
    assert heights[-1] == 220.0  # the longest wall time fills the panel


def test_the_section_lists_each_distinct_error_with_how_often_it_happened() -> None:
    lines = section(result(), "plot.svg")
    assert "- 2×: ran out of tokens" in lines
    assert "- 1×: 1 failed" in lines
