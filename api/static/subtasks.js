// The subtask table, and the detail of the selected subtask with its output.

import { api } from "./api.js";
import {
  byId, el, formatDuration, hasEnded, makeCopyButton, parseTime, say, secondsBetween, setPill,
} from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { linkCitations } from "./sources.js";

/** How long a subtask ran, or has run so far; "–" if it never started, or ended untimed. */
export function subtaskDuration(s, now = Date.now()) {
  const started = parseTime(s.started_at);
  const ended = parseTime(s.ended_at);
  if (started === null) return "–";
  if (ended === null && hasEnded(s)) return "–";
  return formatDuration(secondsBetween(started, ended, now));
}

/** A subtask's streamed text after a `delta` event: appended, or (restart) started again. */
export function withDelta(text, delta) {
  return delta.restart ? delta.text : (text || "") + delta.text;
}

/** What a row shows of streamed text: its last non-empty line, cut to `max` characters. */
export function lastLine(text, max = 120) {
  const lines = (text || "").split("\n").map((line) => line.trim()).filter(Boolean);
  const line = lines.length ? lines[lines.length - 1] : "";
  return line.length > max ? `…${line.slice(line.length - max + 1)}` : line;
}

export class SubtaskTable {
  constructor(getRunId, onSelect) {
    this.getRunId = getRunId;
    this.onSelect = onSelect;
    this.tbody = byId("subtasks").tBodies[0];
    this.rows = new Map();
    this.subtasks = new Map();
    this.streamed = new Map(); // subtask id -> the text its model has written so far
    this.selected = null;
    this.fetchedFor = null; // "<subtask>|<state>" whose output is shown
    this.request = 0;
  }

  /** A `delta` event: the subtask's text grows in its row and, if selected, its detail. */
  stream(delta) {
    const text = withDelta(this.streamed.get(delta.subtask), delta);
    this.streamed.set(delta.subtask, text);
    this.showStreamed(delta.subtask);
  }

  showStreamed(id) {
    const s = this.subtasks.get(id);
    const row = this.rows.get(id);
    const writing = s && !hasEnded(s) ? this.streamed.get(id) || "" : "";
    if (row) {
      const line = row.querySelector(".stream");
      line.textContent = lastLine(writing);
      line.hidden = !writing;
    }
    if (id === this.selected && writing) {
      const output = byId("detail-output");
      let pre = output.querySelector("pre.streaming");
      if (!pre) {
        pre = el("pre", { class: "streaming", "aria-live": "off" });
        output.replaceChildren(el("p", { class: "muted", text: "Being written…" }), pre);
      }
      pre.textContent = writing; // the model's text as text, never as HTML
    }
  }

  reset() {
    this.rows.clear();
    this.subtasks.clear();
    this.streamed.clear();
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
      row.cells[1].firstChild.textContent = s.title;
      row.cells[2].textContent = s.kind;
      row.cells[3].textContent = s.tier;
      row.cells[4].textContent = s.model || "–";
      setPill(row.cells[5].firstChild, s);
      row.cells[6].textContent = subtaskDuration(s, now);
      row.dataset.state = s.state;
      this.showStreamed(s.id);
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
      if (s && !hasEnded(s) && s.started_at) row.cells[6].textContent = subtaskDuration(s, now);
    }
  }

  row(s) {
    const copy = el("button", { type: "button", class: "icon-button", "aria-label": `Copy subtask id ${s.id}` }, "Copy");
    makeCopyButton(copy, () => s.id);
    const tr = el(
      "tr",
      { tabindex: 0, title: "Show this subtask's output" },
      el("td", { class: "id-cell" }, el("code", { text: s.id }), copy),
      el("td", {}, el("span"), el("div", { class: "stream", hidden: true })),
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
    const parts = [s.kind, `tier ${s.tier}`, s.model, s.state, subtaskDuration(s)];
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
    if (!hasEnded(s)) {
      output.replaceChildren(el("p", { class: "muted", text: "The output appears as the subtask's model writes it." }));
      this.showStreamed(s.id);
      return;
    }
    output.replaceChildren(el("p", { class: "muted", text: "Loading the output…" }));
    const runId = encodeURIComponent(this.getRunId());
    try {
      const data = await api(`/task/${runId}/subtasks/${encodeURIComponent(s.id)}`);
      if (request !== this.request) return;
      if (data && typeof data.output === "string" && data.output) output.innerHTML = linkCitations(renderMarkdown(data.output));
      else output.replaceChildren(el("p", { class: "muted", text: "This subtask has no output." }));
    } catch (error) {
      if (request !== this.request) return;
      const text = error.status === 404 ? "Output not available yet." : error.message;
      output.replaceChildren(el("p", { class: "muted", text }));
    }
  }
}
