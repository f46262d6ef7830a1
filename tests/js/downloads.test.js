// The result card's download links (api/static/downloads.js): one URL per file, under the
// goal run's own path, with the id encoded.

import assert from "node:assert/strict";
import { test } from "node:test";

import { resultDownloads } from "../../api/static/downloads.js";

test("a goal run's downloads are its result.md and result.pdf", () => {
  const id = "0f3c2a9e-1b2c-4d5e-8f90-123456789abc";
  assert.deepEqual(resultDownloads(id), {
    md: `/task/${id}/result.md`,
    pdf: `/task/${id}/result.pdf`,
  });
});

test("an id that is not a plain UUID cannot leave the goal run's path", () => {
  const links = resultDownloads("../../session/logout?x=1");
  assert.equal(links.md, "/task/..%2F..%2Fsession%2Flogout%3Fx%3D1/result.md");
});
