// Cost, before and during a goal run: the plan's forecast while it waits for approval, spend
// against the budget as a meter, spend per tier as a small bar chart. A null cost means the
// model has no known price: it is shown as "unpriced", never as $0.

import { byId, el, formatCost, formatCount, say } from "./dom.js";

const isPriced = (usd) => typeof usd === "number" && Number.isFinite(usd);

/** "$0.0123", or "unpriced" for a model without a known price. */
export const costText = (usd) => (isPriced(usd) ? formatCost(usd) : "unpriced");

/** "$0.02 – $0.09" and the note saying what it rests on; null without a forecast. */
export function forecastText(forecast) {
  if (!forecast) return null;
  const range = `${costText(forecast.low_usd)} – ${costText(forecast.high_usd)}`;
  const unpriced = forecast.unpriced?.length ? `; no price known for tier ${forecast.unpriced.join(", ")}` : "";
  return { range, note: `from ${forecast.basis}${unpriced}` };
}

/** Spend against the budget's dollar limit: null when the goal run has none. */
export function budgetMeter(usage, budget) {
  const limit = budget?.max_cost_usd;
  if (!isPriced(limit) || limit <= 0) return null;
  const spent = usage?.cost_usd;
  if (!isPriced(spent)) return { spent: null, limit, fraction: 0, over: false, text: `unpriced of ${formatCost(limit)}` };
  const fraction = Math.min(1, spent / limit);
  return {
    spent, limit, fraction, over: spent >= limit,
    text: `${formatCost(spent)} of ${formatCost(limit)} (${Math.round((spent / limit) * 100)}%)`,
  };
}

/** Each tier's spend, largest first, with its share of the largest (for the bar's length). */
export function tierSpend(byTier) {
  const rows = Object.entries(byTier || {}).map(([tier, usage]) => ({
    tier,
    cost: isPriced(usage?.cost_usd) ? usage.cost_usd : null,
    tokens: (usage?.input_tokens || 0) + (usage?.output_tokens || 0),
  }));
  const top = Math.max(0, ...rows.map((r) => r.cost ?? 0));
  rows.sort((a, b) => (b.cost ?? -1) - (a.cost ?? -1) || b.tokens - a.tokens || a.tier.localeCompare(b.tier));
  return rows.map((r) => ({ ...r, share: top > 0 && r.cost !== null ? r.cost / top : 0 }));
}

/** The cost card (meter and per-tier chart) and the forecast in the approval card. */
export class CostView {
  reset() {
    byId("cost-card").hidden = true;
    byId("budget-meter-row").hidden = true;
    byId("tier-spend").replaceChildren();
    say(byId("approval-forecast"), "");
    byId("approval-forecast-note").textContent = "";
  }

  update(doc) {
    // The server sends a forecast only while the plan waits for approval.
    const forecast = forecastText(doc.forecast);
    say(byId("approval-forecast"), forecast ? `Forecast cost: ${forecast.range}` : "");
    byId("approval-forecast-note").textContent = forecast ? forecast.note : "";

    const meter = budgetMeter(doc.usage, doc.budget);
    const tiers = tierSpend(doc.usage?.by_tier);
    byId("cost-card").hidden = !meter && tiers.length === 0;
    byId("budget-meter-row").hidden = !meter;
    if (meter) {
      const bar = byId("budget-meter");
      bar.max = meter.limit;
      bar.value = meter.spent ?? 0;
      bar.dataset.over = String(meter.over);
      byId("budget-meter-text").textContent = meter.text;
    }
    byId("tier-spend").replaceChildren(
      ...tiers.map((row) => {
        const fill = el("span", { class: "tier-spend-fill" });
        fill.style.width = `${Math.round(row.share * 100)}%`;
        return el(
          "li",
          { "data-tier": row.tier },
          el("span", { class: "tier-spend-name", text: row.tier }),
          el("span", { class: "tier-spend-bar", "aria-hidden": "true" }, fill),
          el("span", { class: "tier-spend-cost", text: costText(row.cost) }),
          el("span", { class: "tier-spend-tokens muted", text: `${formatCount(row.tokens)} tokens` }),
        );
      }),
    );
  }
}
