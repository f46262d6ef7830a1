// The subtask table, and the detail of the selected subtask with its output.

import { api } from "./api.js";
import {
  byId, el, formatDuration, makeCopyButton, parseTime, say, secondsBetween, setPill,
} from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const FINISHED = new Set([
  "Completed", "Cached", "Failed", "Crashed", "TimedOut", "Cancelled", "Skipped", "Halted",
]);

function duration(s, now) {
  const started = parseTime(s.started_at);
  const ended = parseTime(s.ended_at);
  if (started === null) return "–";
  if (ended === null && FINISHED.has(s.state)) return "–";
  return formatDuration(secondsBetween(started, ended, now));
}

export class SubtaskTable {
  constructor(getRunId, onSelect) {
    this.getRunId = getRunId;
    this.onSelect = onSelect;
    this.tbody = byId("subtasks").tBodies[0];
    this.rows = new Map();
    this.subtasks = new Map();
    this.selected = null;
    this.fetchedFor = null; // "<subtask>|<state>" whose output is shown
    this.request = 0;
  }

  reset() {
    this.rows.clear();
    this.subtasks.clear();
    this.tbody.replaceChildren();
    this.selected = null;
    this.fetchedFor = null;
    byId("subtask-detail").hidden = true;
  }

  update(subtasks) {
    const now = Date.now();
    const seen = new Set();
    subtasks.forEach((s, index) => {
      seen.add(s.id);
      this.subtasks.set(s.id, s);
      const row = this.rows.get(s.id) || this.row(s);
      if (this.tbody.rows[index] !== row) this.tbody.insertBefore(row, this.tbody.rows[index] || null);
      row.cells[1].textContent = s.title;
      row.cells[2].textContent = s.kind;
      row.cells[3].textContent = s.tier;
      row.cells[4].textContent = s.model || "–";
      setPill(row.cells[5].firstChild, s.state);
      row.cells[6].textContent = duration(s, now);
      row.dataset.state = s.state;
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
        this.subtasks.delete(id);
      }
    }
    if (this.selected && !seen.has(this.selected)) this.select(null);
    else if (this.selected) this.showDetail();
  }

  /** Running subtasks' times go on with the local clock. */
  tick() {
    const now = Date.now();
    for (const [id, row] of this.rows) {
      const s = this.subtasks.get(id);
      if (s && !FINISHED.has(s.state) && s.started_at) row.cells[6].textContent = duration(s, now);
    }
  }

  row(s) {
    const copy = el("button", { type: "button", class: "icon-button", "aria-label": `Copy subtask id ${s.id}` }, "Copy");
    makeCopyButton(copy, () => s.id);
    const tr = el(
      "tr",
      { tabindex: 0, title: "Show this subtask's output" },
      el("td", { class: "id-cell" }, el("code", { text: s.id }), copy),
      el("td"),
      el("td"),
      el("td"),
      el("td", { class: "model" }),
      el("td", {}, el("span", { class: "pill" })),
      el("td", { class: "num" }),
    );
    tr.dataset.subtask = s.id;
    tr.addEventListener("click", () => this.select(s.id));
    tr.addEventListener("keydown", (event) => {
      if (event.target === tr && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        this.select(s.id);
      }
    });
    this.rows.set(s.id, tr);
    return tr;
  }

  select(id) {
    this.selected = id;
    this.fetchedFor = null;
    for (const [rowId, row] of this.rows) {
      if (rowId === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
      row.classList.toggle("selected", rowId === id);
    }
    this.onSelect(id);
    this.showDetail();
  }

  showDetail() {
    const detail = byId("subtask-detail");
    const s = this.subtasks.get(this.selected);
    detail.hidden = !s;
    if (!s) return;
    byId("detail-title").textContent = `${s.id}: ${s.title}`;
    const parts = [s.kind, `tier ${s.tier}`, s.model, s.state, duration(s, Date.now())];
    byId("detail-meta").textContent = parts.filter(Boolean).join(" · ");
    say(byId("detail-learned"), s.learned ? `Learned: ${s.learned}` : "");
    say(byId("detail-error"), s.error || "");
    const key = `${s.id}|${s.state}`;
    if (this.fetchedFor !== key) {
      this.fetchedFor = key;
      this.loadOutput(s);
    }
  }

  async loadOutput(s) {
    const output = byId("detail-output");
    const request = ++this.request;
    if (!FINISHED.has(s.state)) {
      output.replaceChildren(el("p", { class: "muted", text: "The output appears when the subtask finishes." }));
      return;
    }
    output.replaceChildren(el("p", { class: "muted", text: "Loading the output…" }));
    const runId = encodeURIComponent(this.getRunId());
    try {
      const data = await api(`/task/${runId}/subtasks/${encodeURIComponent(s.id)}`);
      if (request !== this.request) return;
      if (data && typeof data.output === "string" && data.output) output.innerHTML = renderMarkdown(data.output);
      else output.replaceChildren(el("p", { class: "muted", text: "This subtask has no output." }));
    } catch (error) {
      if (request !== this.request) return;
      const text = error.status === 404 ? "Output not available yet." : error.message;
      output.replaceChildren(el("p", { class: "muted", text }));
    }
  }
}
