// The sentences the page shows for a refused API call (api/static/api.js `explain`).

import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, explain } from "../../api/static/api.js";

test("the server's detail, as a sentence", () => {
  assert.equal(explain(422, "the goal is empty"), "The goal is empty.");
  assert.equal(explain(400, "Too long!"), "Too long!");
  assert.equal(explain(404, "No goal run has id x."), "No goal run has id x.");
});

test("without a usable detail, what the status means", () => {
  assert.equal(explain(404), "Not found.");
  assert.equal(explain(404, [{ msg: "a validation list" }]), "Not found.");
  assert.equal(explain(404, "   "), "Not found.");
  assert.equal(explain(500, null), "The server answered 500.");
  assert.equal(explain(403), "Refused.");
});

test("statuses that need a next step say what to do", () => {
  assert.equal(explain(401, "anything"), "Your session has ended: reload the page and log in again.");
  assert.equal(explain(403, "not yours"), "Refused. Not yours.");
  assert.equal(explain(413), "That is too large for the server to accept.");
  assert.equal(explain(429), "Too busy right now. Too many requests. Try again in a moment.");
  assert.equal(
    explain(503, "the Prefect server at http://x is unreachable"),
    "Mission Control cannot reach Prefect. The Prefect server at http://x is unreachable. Try again shortly.",
  );
  assert.equal(explain(503), "Mission Control cannot reach Prefect. It is unavailable. Try again shortly.");
});

test("an ApiError carries the status", () => {
  const error = new ApiError(404, "Not found.");
  assert.ok(error instanceof Error);
  assert.deepEqual([error.status, error.message], [404, "Not found."]);
});
