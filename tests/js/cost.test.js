// Cost before and during a run (api/static/cost.js): the forecast, the budget meter, the
// per-tier chart; a null cost (a model without a known price) is never shown as $0.

import assert from "node:assert/strict";
import { test } from "node:test";

import { budgetMeter, costText, forecastText, tierSpend } from "../../api/static/cost.js";

test("a null cost is unpriced, not $0", () => {
  assert.equal(costText(null), "unpriced");
  assert.equal(costText(undefined), "unpriced");
  assert.equal(costText(0), "$0.00");
  assert.equal(costText(0.0042), "$0.0042");
});

test("the forecast reads as a range with what it rests on", () => {
  assert.equal(forecastText(null), null);
  const shown = forecastText({ low_usd: 0.012, high_usd: 0.4, basis: "token counts of 12 past subtasks (extract)", unpriced: ["local"] });
  assert.equal(shown.range, "$0.01 – $0.40");
  assert.equal(shown.note, "from token counts of 12 past subtasks (extract); no price known for tier local");
});

test("the budget meter: spend of the dollar limit, full when over", () => {
  assert.equal(budgetMeter({ cost_usd: 1 }, null), null);
  assert.equal(budgetMeter({ cost_usd: 1 }, { max_tokens: 100 }), null); // no dollar limit
  assert.deepEqual(budgetMeter({ cost_usd: 0.05 }, { max_cost_usd: 0.2 }), {
    spent: 0.05, limit: 0.2, fraction: 0.25, over: false, text: "$0.05 of $0.20 (25%)",
  });
  const over = budgetMeter({ cost_usd: 0.3 }, { max_cost_usd: 0.2 });
  assert.equal(over.fraction, 1);
  assert.equal(over.over, true);
  assert.equal(budgetMeter({ cost_usd: null }, { max_cost_usd: 0.2 }).text, "unpriced of $0.20");
});

test("spend per tier: largest first, bars relative to the largest, unpriced tiers last", () => {
  const rows = tierSpend({
    fast: { input_tokens: 100, output_tokens: 20, cost_usd: 0.01 },
    deep: { input_tokens: 300, output_tokens: 50, cost_usd: 0.04 },
    local: { input_tokens: 900, output_tokens: 90, cost_usd: null },
  });
  assert.deepEqual(rows.map((r) => [r.tier, r.cost, r.tokens, r.share]), [
    ["deep", 0.04, 350, 1],
    ["fast", 0.01, 120, 0.25],
    ["local", null, 990, 0],
  ]);
  assert.deepEqual(tierSpend(undefined), []);
});
