"""A plan's forecast cost (core/forecast.py): prices times typical or learned tokens."""

from __future__ import annotations

import pytest

from core.forecast import DEFAULT_TOKENS, JOIN_KIND, MIN_SAMPLES, forecast_cost, learn_tokens

MODELS = {"fast": "claude-haiku-5-5", "deep": "claude-opus-5-5", "local": "llama-3"}


def test_without_past_runs_the_default_table_prices_each_subtask_and_the_join() -> None:
    forecast = forecast_cost([("extract", "fast"), (JOIN_KIND, "deep")], MODELS, {}, {})
    extract, join = DEFAULT_TOKENS["extract"], DEFAULT_TOKENS[JOIN_KIND]
    # haiku 1/5, opus 5/25 dollars per million tokens (core/pricing.py)
    low = (extract.input_low * 1 + extract.output_low * 5) + (
        join.input_low * 5 + join.output_low * 25
    )
    high = (extract.input_high * 1 + extract.output_high * 5) + (
        join.input_high * 5 + join.output_high * 25
    )
    assert forecast.low_usd == pytest.approx(low / 1e6)
    assert forecast.high_usd == pytest.approx(high / 1e6)
    assert "too few finished goal runs" in forecast.basis


def test_learned_ranges_replace_the_defaults_for_the_kinds_seen_often_enough() -> None:
    samples = {
        "extract": [(1000 * i, 100 * i) for i in range(1, 11)],  # 10 subtasks
        "write": [(5000, 900)] * (MIN_SAMPLES - 1),  # too few: the default serves
    }
    learned = learn_tokens(samples)
    assert set(learned) == {"extract"}
    assert (learned["extract"].input_low, learned["extract"].input_high) == (2000, 9000)
    assert (learned["extract"].output_low, learned["extract"].output_high) == (200, 900)
    forecast = forecast_cost([("extract", "fast"), ("write", "fast")], MODELS, learned, {})
    assert forecast.basis == "token counts of 10 past subtasks (extract); typical counts for write"
    write = DEFAULT_TOKENS["write"]
    assert forecast.low_usd == pytest.approx(
        (2000 + 200 * 5 + write.input_low + write.output_low * 5) / 1e6
    )


def test_a_tier_without_a_known_price_is_named_not_guessed() -> None:
    forecast = forecast_cost([("extract", "local")], MODELS, {}, {})
    assert (forecast.low_usd, forecast.high_usd, forecast.unpriced) == (0, 0, ["local"])
    priced = forecast_cost([("extract", "local")], MODELS, {}, {"llama-3": (1.0, 2.0)})
    assert priced.unpriced == [] and priced.high_usd > 0
