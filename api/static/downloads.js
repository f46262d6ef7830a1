// The result's downloads: its Markdown and PDF files, for the goal run on view.

import { byId } from "./dom.js";

/** Where a goal run's result files are served (GET /task/{id}/result.md and .pdf). */
export function resultDownloads(id) {
  const base = `/task/${encodeURIComponent(id)}`;
  return { md: `${base}/result.md`, pdf: `${base}/result.pdf` };
}

/** Point the result card's download links at goal run `id`. */
export function showDownloads(id) {
  const links = resultDownloads(id);
  byId("result-md").href = links.md;
  byId("result-pdf").href = links.pdf;
}
