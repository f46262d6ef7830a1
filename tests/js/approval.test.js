// Which plan revision a paused goal run waits on (api/static/approval.js `pendingRevision`):
// the page shows that revision as a diff of the plan.

import assert from "node:assert/strict";
import { test } from "node:test";

import { pendingRevision } from "../../api/static/approval.js";

const replan = (revision, waiting = false, refused = null) => ({
  revision, waiting, refused, reason: "r", added: [], replaced: {},
});

test("a plan that was never revised waits on no revision", () => {
  assert.equal(pendingRevision({ replans: [], plan_revision: 0 }), 0);
  assert.equal(pendingRevision({}), 0);
  assert.equal(pendingRevision(null), 0);
});

test("the last revision, while it waits, is the one to approve", () => {
  assert.equal(pendingRevision({ replans: [replan(1, true)], plan_revision: 0 }), 1);
  assert.equal(pendingRevision({ replans: [replan(1), replan(2, true)], plan_revision: 1 }), 2);
});

test("a revision that already runs, or was refused, waits on nothing", () => {
  assert.equal(pendingRevision({ replans: [replan(1)], plan_revision: 1 }), 0);
  assert.equal(pendingRevision({ replans: [replan(1, false, "over the budget")], plan_revision: 0 }), 0);
  assert.equal(pendingRevision({ replans: [replan(1, true), replan(2)], plan_revision: 2 }), 0);
});

test("malformed documents wait on nothing", () => {
  assert.equal(pendingRevision({ replans: "x", plan_revision: 0 }), 0);
  assert.equal(pendingRevision({ replans: [{ revision: "1", waiting: true }], plan_revision: 0 }), 0);
});
