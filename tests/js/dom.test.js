// The page's shared helpers (api/static/dom.js): the state buckets the server sends, and the
// formatting of times, costs and counts. Also that no module keeps its own list of states.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { describe, test } from "node:test";

import {
  bucketOf, formatAgo, formatCost, formatCount, formatDuration, hasEnded, isRetryable, parseTime,
  secondsBetween, setPill,
} from "../../api/static/dom.js";

const BUCKETS = ["pending", "running", "completed", "failed", "cancelled", "skipped"];

describe("buckets", () => {
  test("the bucket is the server's", () => {
    for (const bucket of BUCKETS) assert.equal(bucketOf({ state: "Anything", bucket }), bucket);
    assert.equal(bucketOf({ state: "Cancelling", bucket: "running" }), "running");
    assert.equal(bucketOf({ state: "Paused", bucket: "pending" }), "pending");
  });

  test("no bucket (an older server), or one the page does not know, counts as pending", () => {
    assert.equal(bucketOf({ state: "Completed" }), "pending"); // never guessed from the state
    assert.equal(bucketOf({ state: "Skipped", bucket: "muted" }), "pending");
    assert.equal(bucketOf({ bucket: "__proto__" }), "pending");
    assert.equal(bucketOf({ bucket: null }), "pending");
    assert.equal(bucketOf(null), "pending");
    assert.equal(bucketOf(undefined), "pending");
  });

  test("ended: completed, failed, cancelled, and (for subtasks) skipped", () => {
    const ended = BUCKETS.filter((bucket) => hasEnded({ bucket }));
    assert.deepEqual(ended, ["completed", "failed", "cancelled", "skipped"]);
    assert.equal(hasEnded({ state: "Paused", bucket: "pending" }), false);
    assert.equal(hasEnded({ state: "Cancelling", bucket: "running" }), false);
    assert.equal(hasEnded({ state: "Crashed", bucket: "failed" }), true);
    assert.equal(hasEnded({ state: "Failed" }), false); // no bucket: pending
  });

  test("retryable: failed or cancelled", () => {
    const retryable = BUCKETS.filter((bucket) => isRetryable({ bucket }));
    assert.deepEqual(retryable, ["failed", "cancelled"]);
    assert.equal(isRetryable({ state: "TimedOut", bucket: "failed" }), true);
    assert.equal(isRetryable({ state: "Failed" }), false);
  });

  test("a pill shows the state and is coloured by the bucket", () => {
    const pill = { textContent: "", dataset: {} };
    setPill(pill, { state: "Cached", bucket: "completed" });
    assert.deepEqual([pill.textContent, pill.dataset], ["Cached", { state: "Cached", bucket: "completed" }]);
    setPill(pill, { state: "Connecting" });
    assert.deepEqual([pill.textContent, pill.dataset], ["Connecting", { state: "Connecting", bucket: "pending" }]);
  });
});

describe("one state vocabulary", () => {
  // Prefect's state names and ours (Skipped, Halted): the server buckets them all.
  const STATES = [
    "Scheduled", "Pending", "NotReady", "Late", "AwaitingRetry", "AwaitingConcurrencySlot",
    "Paused", "Suspended", "Running", "Retrying", "Cancelling", "Completed", "Cached", "Failed",
    "Crashed", "TimedOut", "Cancelled", "Skipped", "Halted",
  ];
  // The only behaviour tied to one state rather than to a bucket.
  const ALLOWED = { "approval.js": ["Paused"], "run.js": ["Cancelling"], "tasks.css": ["Paused"] };
  const folder = new URL("../../api/static/", import.meta.url);

  test("no page module names a state, except where one state has behaviour of its own", () => {
    const quoted = new RegExp(`["'\`](${STATES.join("|")})["'\`]`, "g");
    const found = {};
    for (const name of readdirSync(folder).filter((n) => /\.(js|css)$/.test(n))) {
      const names = [...readFileSync(new URL(name, folder), "utf8").matchAll(quoted)].map((m) => m[1]);
      if (names.length) found[name] = [...new Set(names)].sort();
    }
    assert.deepEqual(found, ALLOWED);
  });
});

describe("formatting", () => {
  test("durations", () => {
    assert.equal(formatDuration(null), "–");
    assert.equal(formatDuration(undefined), "–");
    assert.equal(formatDuration(-1), "–");
    assert.equal(formatDuration(0), "0.0 s");
    assert.equal(formatDuration(0.44), "0.4 s");
    assert.equal(formatDuration(9.96), "10.0 s");
    assert.equal(formatDuration(12.7), "12 s");
    assert.equal(formatDuration(59.9), "59 s");
    assert.equal(formatDuration(60), "1 min 00 s");
    assert.equal(formatDuration(184), "3 min 04 s");
    assert.equal(formatDuration(3599), "59 min 59 s");
    assert.equal(formatDuration(3600), "1 h 00 min");
    assert.equal(formatDuration(3720), "1 h 02 min");
    assert.equal(formatDuration(90000), "25 h 00 min");
  });

  test("costs: cents, or four decimals below one cent", () => {
    assert.equal(formatCost(0), "$0.00");
    assert.equal(formatCost(null), "unpriced");
    assert.equal(formatCost(undefined), "$0.00");
    assert.equal(formatCost("not a number"), "$0.00");
    assert.equal(formatCost(0.0042), "$0.0042");
    assert.equal(formatCost(0.01), "$0.01");
    assert.equal(formatCost(1.234), "$1.23");
    assert.equal(formatCost("2.5"), "$2.50");
  });

  test("counts", () => {
    assert.equal(formatCount(1234567), "1,234,567");
    assert.equal(formatCount(0), "0");
    assert.equal(formatCount(undefined), "0");
  });

  test("times: parsed, between, and how long ago", () => {
    const t = Date.parse("2024-05-01T12:00:00Z");
    assert.equal(parseTime("2024-05-01T12:00:00Z"), t);
    assert.equal(parseTime("2024-05-01T12:00:00.5+00:00"), t + 500);
    for (const bad of ["", null, undefined, "soon"]) assert.equal(parseTime(bad), null);

    assert.equal(secondsBetween(null, t), null);
    assert.equal(secondsBetween(t, t + 2500), 2.5);
    assert.equal(secondsBetween(t, null, t + 4000), 4); // not ended: up to now
    assert.equal(secondsBetween(t, t - 1000), 0); // clocks that disagree
    assert.equal(secondsBetween(t, undefined, t + 1000), 1);

    assert.equal(formatAgo(null, t), "");
    assert.equal(formatAgo(t, t + 44_000), "just now");
    assert.equal(formatAgo(t + 5000, t), "just now"); // from the future: a skewed clock
    assert.equal(formatAgo(t, t + 5 * 60_000), "5 min ago");
    assert.equal(formatAgo(t, t + 3 * 3600_000), "3 h ago");
    assert.equal(formatAgo(t, t + 2 * 86400_000), new Date(t).toLocaleDateString());
  });
});
