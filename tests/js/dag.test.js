// The DAG's layout (api/static/dag.js `layers`): which column each subtask goes in, and in
// what order within its column.

import assert from "node:assert/strict";
import { test } from "node:test";

import { layers } from "../../api/static/dag.js";

const plan = (...steps) => steps.map(([id, depends_on]) => ({ id, depends_on }));
const ids = (grouped) => grouped.map((layer) => layer.map((s) => s.id));

test("no subtasks, no layers", () => {
  assert.deepEqual(layers([]), []);
});

test("subtasks without dependencies share the first layer, in plan order", () => {
  assert.deepEqual(ids(layers(plan(["b", []], ["a", []], ["c", undefined]))), [["b", "a", "c"]]);
});

test("each subtask's layer is the longest chain of dependencies above it", () => {
  const grouped = layers(plan(["d", ["a", "c"]], ["c", ["b"]], ["b", ["a"]], ["a", []]));
  assert.deepEqual(ids(grouped), [["a"], ["b"], ["c"], ["d"]]);
});

test("a fan-out and fan-in: siblings share a layer", () => {
  const grouped = layers(plan(["x", []], ["y", ["x"]], ["z", ["x"]], ["join", ["y", "z"]]));
  assert.deepEqual(ids(grouped), [["x"], ["y", "z"], ["join"]]);
});

test("a subtask sits near the subtasks it depends on", () => {
  // Rows in layer 0: a -1, b 0, c 1. Layer 1 in plan order is (after c, after a, after b).
  const grouped = layers(
    plan(["a", []], ["b", []], ["c", []], ["after-c", ["c"]], ["after-a", ["a"]], ["after-b", ["b"]]),
  );
  assert.deepEqual(ids(grouped), [["a", "b", "c"], ["after-a", "after-b", "after-c"]]);
  // Two dependencies: the mean of their rows; equal means keep plan order (a stable sort).
  const two = layers(plan(["a", []], ["b", []], ["c", []], ["bc", ["b", "c"]], ["ab", ["a", "b"]], ["ac", ["a", "c"]]));
  assert.deepEqual(ids(two), [["a", "b", "c"], ["ab", "ac", "bc"]]);
});

test("the order follows through the layers", () => {
  const grouped = layers(
    plan(["a", []], ["b", []], ["b1", ["b"]], ["a1", ["a"]], ["b2", ["b1"]], ["a2", ["a1"]]),
  );
  assert.deepEqual(ids(grouped), [["a", "b"], ["a1", "b1"], ["a2", "b2"]]);
});

test("dependencies on subtasks that are not in the plan are ignored", () => {
  const grouped = layers(plan(["a", ["gone"]], ["b", ["a", "also-gone"]]));
  assert.deepEqual(ids(grouped), [["a"], ["b"]]);
});

test("the subtasks themselves are returned, each exactly once", () => {
  const subtasks = plan(["a", []], ["b", ["a"]]);
  const grouped = layers(subtasks);
  assert.equal(grouped[0][0], subtasks[0]);
  assert.equal(grouped[1][0], subtasks[1]);
  assert.deepEqual(subtasks.map((s) => s.id), ["a", "b"]); // the input is left as it was
});

test("a cycle (never in a validated plan) ends, with every subtask in a layer", () => {
  for (const cyclic of [
    plan(["a", ["b"]], ["b", ["a"]]),
    plan(["self", ["self"]]),
    plan(["root", []], ["x", ["root", "z"]], ["y", ["x"]], ["z", ["y"]]),
  ]) {
    const grouped = layers(cyclic);
    assert.equal(grouped.length, Object.keys(grouped).length, "no empty column");
    for (const layer of grouped) assert.ok(layer.length > 0, "no empty column");
    assert.deepEqual(grouped.flat().map((s) => s.id).sort(), cyclic.map((s) => s.id).sort());
  }
});

test("a long chain", () => {
  const chain = Array.from({ length: 500 }, (_, i) => ({ id: `s${i}`, depends_on: i ? [`s${i - 1}`] : [] }));
  const grouped = layers(chain);
  assert.equal(grouped.length, 500);
  assert.equal(grouped[499][0].id, "s499");
});
