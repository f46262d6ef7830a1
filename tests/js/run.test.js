// What the live view of one goal run derives from a progress document (api/static/run.js
// and subtasks.js): its buttons, its figures, and how long each subtask took.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { budgetNote, runActions, subtaskStats } from "../../api/static/run.js";
import { lastLine, subtaskDuration, withDelta } from "../../api/static/subtasks.js";

const doc = (state, bucket) => ({ state, bucket });

describe("Cancel and Retry", () => {
  test("a goal run that has not ended can be cancelled, not retried", () => {
    for (const run of [doc("Scheduled", "pending"), doc("Running", "running"), doc("Paused", "pending")]) {
      assert.deepEqual(runActions(run), { ended: false, cancelling: false, retryable: false });
    }
  });

  test("Cancelling says so, as does the page's own cancel request until the run ends", () => {
    assert.deepEqual(runActions(doc("Cancelling", "running")), { ended: false, cancelling: true, retryable: false });
    assert.deepEqual(runActions(doc("Running", "running"), true), { ended: false, cancelling: true, retryable: false });
    assert.deepEqual(runActions(doc("Cancelled", "cancelled"), true), { ended: true, cancelling: false, retryable: true });
  });

  test("a failed or cancelled goal run can be retried; a completed one cannot", () => {
    assert.deepEqual(runActions(doc("Completed", "completed")), { ended: true, cancelling: false, retryable: false });
    for (const run of [doc("Failed", "failed"), doc("Crashed", "failed"), doc("TimedOut", "failed"), doc("Cancelled", "cancelled")]) {
      assert.deepEqual(runActions(run), { ended: true, cancelling: false, retryable: true }, run.state);
    }
  });

  test("a document without buckets (an older server) is taken as pending", () => {
    assert.deepEqual(runActions({ state: "Failed" }), { ended: false, cancelling: false, retryable: false });
  });
});

describe("figures", () => {
  test("subtasks done, and the rest in a note", () => {
    assert.deepEqual(subtaskStats({ total: 0 }), { text: "–", note: "not planned yet" });
    assert.deepEqual(subtaskStats(undefined), { text: "–", note: "not planned yet" });
    assert.deepEqual(subtaskStats({ total: 3, completed: 3 }), { text: "3 of 3 done", note: "" });
    assert.deepEqual(
      subtaskStats({ total: 7, pending: 1, completed: 1, running: 2, failed: 1, skipped: 1, cancelled: 1 }),
      { text: "1 of 7 done", note: "2 running · 1 failed · 1 skipped · 1 cancelled" },
    );
  });

  test("the budget's limits, or 'estimated' without any", () => {
    assert.equal(budgetNote(null), "estimated");
    assert.equal(budgetNote({}), "estimated");
    assert.equal(budgetNote({ max_tokens: null, max_cost_usd: null }), "estimated");
    assert.equal(
      budgetNote({ max_tokens: 50000, max_cost_usd: 0.5, max_seconds: 90, max_subtasks: 8 }),
      "budget 50,000 tokens, $0.50, 1 min 30 s, 8 subtasks",
    );
    assert.equal(budgetNote({ max_cost_usd: 0.005 }), "budget $0.0050");
  });
});

describe("subtask durations", () => {
  const start = "2024-05-01T12:00:00Z";
  const t = Date.parse(start);

  test("from start to end, or to now while it runs", () => {
    const ended = { state: "Completed", bucket: "completed", started_at: start, ended_at: "2024-05-01T12:00:12Z" };
    assert.equal(subtaskDuration(ended, t + 60_000), "12 s");
    const running = { state: "Running", bucket: "running", started_at: start, ended_at: null };
    assert.equal(subtaskDuration(running, t + 3500), "3.5 s");
  });

  test("a dash when it never started, or ended without an end time", () => {
    assert.equal(subtaskDuration({ state: "Pending", bucket: "pending", started_at: null }, t), "–");
    assert.equal(subtaskDuration({ state: "Skipped", bucket: "skipped", started_at: null }, t), "–");
    const lost = { state: "Crashed", bucket: "failed", started_at: start, ended_at: null };
    assert.equal(subtaskDuration(lost, t + 9000), "–");
  });
});

test("streamed text: deltas append, a restart starts again, a row shows the last line", () => {
  let text = withDelta(undefined, { subtask: "a", text: "Hello", restart: true });
  text = withDelta(text, { subtask: "a", text: " world\nsecond" });
  assert.equal(text, "Hello world\nsecond");
  assert.equal(withDelta(text, { subtask: "a", text: "new try", restart: true }), "new try");
  assert.equal(lastLine("first\nsecond line\n\n"), "second line");
  assert.equal(lastLine("x".repeat(200), 10), `…${"x".repeat(9)}`);
  assert.equal(lastLine(""), "");
});
