// The timeline's model (api/static/timeline.js): bars per tier lane, waits, the critical path.

import assert from "node:assert/strict";
import { test } from "node:test";

import { criticalPath, packRows, tickStep, timelineModel } from "../../api/static/timeline.js";

const T0 = Date.parse("2025-01-01T12:00:00Z");
const iso = (s) => (s === null ? null : new Date(T0 + s * 1000).toISOString());
const sub = (id, start, end, deps = [], extra = {}) => ({
  id, title: `the ${id}`, tier: "fast", depends_on: deps, started_at: iso(start), ended_at: iso(end),
  state: end !== null ? "Completed" : start !== null ? "Running" : "Pending",
  bucket: end !== null ? "completed" : start !== null ? "running" : "pending",
  ...extra,
});
const barsOf = (model) => Object.fromEntries(model.lanes.flatMap((l) => l.bars).map((b) => [b.subtask, b]));

test("the critical path follows the predecessor that ended last", () => {
  const intervals = new Map([["a", [0, 1]], ["b", [0, 3]], ["c", [3, 4]], ["d", [1, 2]]]);
  const preds = new Map([["a", []], ["b", []], ["c", ["a", "b"]], ["d", ["a"]]]);
  assert.deepEqual(criticalPath(intervals, preds), ["b", "c"]);
  assert.deepEqual(criticalPath(new Map(), new Map()), []);
});

test("rows are the slots a tier used: a bar takes the first row free at its start", () => {
  assert.deepEqual(packRows([[0, 2], [1, 3], [2, 4]]), [0, 1, 0]);
});

test("a bar per started subtask, in its tier's lane, with its wait and the critical path", () => {
  const doc = {
    tiers: { fast: { limit: 1 }, deep: { limit: null } },
    subtasks: [
      sub("scope", 0, 1),
      sub("pricing", 1, 5, ["scope"], { tier: "deep" }),
      sub("features", 2.5, 4, ["scope"]), // waited 1.5 s for fast's one slot
      sub("summary", 5, null, ["pricing", "features"], { tier: "writer" }), // running
      sub("later", null, null, ["summary"]),
    ],
  };
  const model = timelineModel(doc, T0 + 7000);
  assert.deepEqual(model.lanes.map((l) => [l.tier, l.limit, l.rows]), [["fast", 1, 1], ["deep", null, 1], ["writer", null, 1]]);
  const bars = barsOf(model);
  assert.deepEqual(Object.keys(bars).sort(), ["features", "pricing", "scope", "summary"]);
  assert.equal(bars.features.ready, 1);
  assert.equal(bars.features.start, 2.5);
  assert.equal(bars.summary.running, true);
  assert.equal(bars.summary.end, 7); // a running bar grows to now
  assert.deepEqual(model.critical, ["scope", "pricing", "summary"]);
  assert.deepEqual([bars.scope.critical, bars.features.critical], [true, false]);
  assert.equal(model.span, 7);
  // later: the running bar has grown, nothing else moved
  assert.equal(barsOf(timelineModel(doc, T0 + 9000)).summary.end, 9);
});

test("a replaced subtask keeps its bar, and its replacement waits from its failure", () => {
  const model = timelineModel({
    subtasks: [
      sub("fetch", 0, 2, [], { state: "Failed", bucket: "failed", replaced_by: "fetch_2" }),
      sub("fetch_2", 3, 4, [], { revision: 1 }),
      sub("write", 4, 5, ["fetch_2"]),
    ],
  });
  const bars = barsOf(model);
  assert.equal(bars.fetch.bucket, "failed");
  assert.equal(bars.fetch.replacedBy, "fetch_2");
  assert.equal(bars.fetch_2.ready, 2);
  assert.deepEqual(model.critical, ["fetch", "fetch_2", "write"]);
});

test("a tier's limit is drawn as its slots; a large one only named", () => {
  const two = [sub("a", 0, 1), sub("b", 0, 2)];
  assert.equal(timelineModel({ tiers: { fast: { limit: 3 } }, subtasks: two }).lanes[0].rows, 3);
  assert.equal(timelineModel({ tiers: { fast: { limit: 50 } }, subtasks: two }).lanes[0].rows, 2);
  assert.equal(timelineModel({ subtasks: two }).lanes[0].limit, null);
});

test("nothing started yet: an empty timeline", () => {
  assert.deepEqual(timelineModel({ subtasks: [sub("a", null, null)] }), { span: 0, lanes: [], critical: [] });
  assert.deepEqual(timelineModel(null), { span: 0, lanes: [], critical: [] });
});

test("about eight ticks at a round step", () => {
  assert.equal(tickStep(3), 0.5);
  assert.equal(tickStep(40), 5);
  assert.equal(tickStep(1000), 300);
});

test("a subtask that ended without a recorded start is drawn from its last predecessor's end", () => {
  const model = timelineModel({ subtasks: [sub("a", 0, 1), sub("b", 0, 2), sub("c", null, 3, ["a", "b"])] });
  const bars = barsOf(model);
  assert.deepEqual([bars.c.start, bars.c.end, bars.c.estimated, bars.a.estimated], [2, 3, true, false]);
  assert.deepEqual(model.critical, ["b", "c"]);
});
