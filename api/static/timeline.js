// The goal run's timeline: a Gantt chart with a lane per tier, a bar per subtask, the time it
// waited shaded and the critical path marked; it grows live. The same rules as core/timeline.py
// (which draws it as SVG for `mission run --timeline`):
// - a subtask's predecessors are its dependencies and the failed subtask it replaced;
// - it waited from when its last predecessor ended (with none, from the first start of its plan
//   revision) to its own start;
// - the critical path runs back from the subtask that ended last through the predecessor that
//   ended last;
// - a subtask that ended without a recorded start (Prefect's database sometimes lacks a quick
//   task run's start) is drawn from its last predecessor's end, marked as estimated;
// - bars are packed into rows (a tier's slots); its concurrency limit is drawn.

import { bucketOf, formatDuration, parseTime } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const LABEL_W = 120;
const ROW_H = 22;
const LANE_GAP = 8;
const AXIS_H = 22;
const PAD = 8;
const MIN_PLOT_W = 360;
export const MAX_DRAWN_LIMIT = 8; // a larger limit is named in the label, not drawn as empty rows
export const WAIT_SHOWN_S = 0.05; // a shorter wait is the engine's own lag, not drawn (core/timeline.py too)

/** The chain that ended last, first to last. `intervals`: Map id -> [start, end] in plan
 * order; `preds`: Map id -> predecessor ids. */
export function criticalPath(intervals, preds) {
  if (intervals.size === 0) return [];
  let last = null;
  for (const [id, [, end]] of intervals) if (last === null || end > intervals.get(last)[1]) last = id;
  const path = [last];
  const seen = new Set(path);
  for (;;) {
    const before = (preds.get(path.at(-1)) || []).filter((p) => intervals.has(p) && !seen.has(p));
    if (before.length === 0) return path.reverse();
    const step = before.reduce((a, b) => (intervals.get(b)[1] > intervals.get(a)[1] ? b : a));
    path.push(step);
    seen.add(step);
  }
}

/** A row per span ([start, end], in the given order): the first row free at its start. */
export function packRows(spans) {
  const order = spans.map((_, i) => i).sort((a, b) => spans[a][0] - spans[b][0] || spans[a][1] - spans[b][1]);
  const rowEnds = [];
  const rows = new Array(spans.length).fill(0);
  for (const i of order) {
    const [start, end] = spans[i];
    let free = rowEnds.findIndex((e) => e <= start + 1e-6);
    if (free === -1) free = rowEnds.push(end) - 1;
    rowEnds[free] = end;
    rows[i] = free;
  }
  return rows;
}

function predecessors(subtasks) {
  const preds = new Map(subtasks.map((s) => [s.id, [...(s.depends_on || [])]]));
  for (const s of subtasks) {
    if (typeof s.replaced_by === "string" && preds.has(s.replaced_by)) preds.get(s.replaced_by).push(s.id);
  }
  return preds;
}

/** The timeline of a progress document as of `now` (ms): {span, lanes, critical}; times in
 * seconds from the first start. A lane: {tier, limit, rows, bars}; a bar: {subtask, title,
 * state, bucket, start, end, ready, running, critical, row, replacedBy}. */
export function timelineModel(doc, now = Date.now()) {
  const subtasks = doc?.subtasks || [];
  const preds = predecessors(subtasks);
  const byId = new Map(subtasks.map((s) => [s.id, s]));
  const starts = new Map();
  for (const s of subtasks) {
    const ended = parseTime(s.ended_at);
    if (parseTime(s.started_at) !== null) starts.set(s.id, parseTime(s.started_at));
    else if (ended !== null) {
      const ends = preds.get(s.id).map((p) => parseTime(byId.get(p)?.ended_at)).filter((e) => e !== null);
      starts.set(s.id, ends.length ? Math.min(Math.max(...ends), ended) : ended);
    }
  }
  const started = subtasks.filter((s) => starts.has(s.id));
  if (started.length === 0) return { span: 0, lanes: [], critical: [] };
  const origin = Math.min(...starts.values());
  const at = (ms) => Math.max(0, (ms - origin) / 1000);
  const intervals = new Map(started.map((s) => [s.id, [at(starts.get(s.id)), at(parseTime(s.ended_at) ?? now)]]));
  const firstOfRevision = new Map();
  for (const s of started) {
    const revision = s.revision || 0;
    const start = intervals.get(s.id)[0];
    firstOfRevision.set(revision, Math.min(firstOfRevision.get(revision) ?? start, start));
  }
  const ready = (s) => {
    const before = preds.get(s.id).filter((p) => byId.has(p));
    if (before.length === 0) return firstOfRevision.get(s.revision || 0);
    const ends = before.filter((p) => intervals.has(p) && parseTime(byId.get(p).ended_at) !== null).map((p) => intervals.get(p)[1]);
    return ends.length === before.length ? Math.max(...ends) : intervals.get(s.id)[0];
  };
  const critical = criticalPath(intervals, preds);
  const onPath = new Set(critical);
  const limits = doc.tiers || {};
  const lanes = [];
  for (const tier of new Set(subtasks.map((s) => s.tier))) {
    const mine = started.filter((s) => s.tier === tier);
    if (mine.length === 0) continue;
    const rows = packRows(mine.map((s) => intervals.get(s.id)));
    const bars = mine.map((s, i) => {
      const [start, end] = intervals.get(s.id);
      return {
        subtask: s.id, title: s.title, state: s.state, bucket: bucketOf(s), start, end,
        ready: Math.min(ready(s), start), running: parseTime(s.ended_at) === null,
        critical: onPath.has(s.id), row: rows[i],
        replacedBy: typeof s.replaced_by === "string" && s.replaced_by ? s.replaced_by : null,
        estimated: parseTime(s.started_at) === null,
      };
    });
    const limit = Number.isInteger(limits[tier]?.limit) ? limits[tier].limit : null;
    const drawn = limit !== null && limit <= MAX_DRAWN_LIMIT ? limit : 0;
    lanes.push({ tier, limit, rows: Math.max(1, Math.max(...rows) + 1, drawn), bars });
  }
  const span = Math.max(...[...intervals.values()].map(([, end]) => end));
  return { span, lanes, critical };
}

/** Seconds between the axis' ticks: at most eight of them, at a round number. */
export function tickStep(span) {
  for (const step of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) {
    if (span / step <= 8) return step;
  }
  return 7200;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** The timeline card's SVG, redrawn from the model on each document and each second while the
 * run goes on (its running bars grow). */
export class Timeline {
  constructor(svg, note) {
    this.svg = svg;
    this.note = note;
    this.doc = null;
  }

  update(doc) {
    this.doc = doc;
    this.draw();
  }

  /** Redraw only while something runs: a finished timeline does not change. */
  tick() {
    if (this.doc?.subtasks?.some((s) => parseTime(s.started_at) !== null && parseTime(s.ended_at) === null)) this.draw();
  }

  draw() {
    const model = timelineModel(this.doc);
    this.svg.toggleAttribute("hidden", model.lanes.length === 0);
    this.note.hidden = model.lanes.length > 0;
    if (model.lanes.length === 0) {
      this.svg.replaceChildren();
      return;
    }
    const width = Math.max(MIN_PLOT_W + LABEL_W + PAD * 2, this.svg.parentElement?.clientWidth || 0);
    const plotW = width - LABEL_W - PAD * 2;
    const span = Math.max(model.span, 1);
    const scale = plotW / span;
    const x0 = PAD + LABEL_W;
    const lanesH = model.lanes.reduce((h, lane) => h + lane.rows * ROW_H + LANE_GAP, 0);
    const height = PAD * 2 + AXIS_H + lanesH;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    const axis = svgEl("g", { class: "tl-axis" });
    const step = tickStep(span);
    for (let t = 0; t <= span + 1e-9; t += step) {
      const x = x0 + t * scale;
      axis.append(
        svgEl("line", { x1: x, y1: PAD + AXIS_H - 4, x2: x, y2: PAD + AXIS_H + lanesH, class: "tl-tick" }),
        svgEl("text", { x, y: PAD + AXIS_H - 8, class: "tl-tick-label", "text-anchor": "middle" }, `${t} s`),
      );
    }
    const lanes = svgEl("g", { class: "tl-lanes" });
    let y = PAD + AXIS_H;
    for (const lane of model.lanes) {
      lanes.append(this.lane(lane, { x0, y, width, scale }));
      y += lane.rows * ROW_H + LANE_GAP;
    }
    this.svg.replaceChildren(axis, lanes);
    const path = model.critical.join(" → ");
    this.svg.setAttribute("aria-label", `Timeline of the goal run; critical path: ${path}`);
  }

  lane(lane, { x0, y, width, scale }) {
    const g = svgEl("g", { class: "tl-lane" });
    g.dataset.tier = lane.tier;
    const laneH = lane.rows * ROW_H;
    g.append(
      svgEl("rect", { x: PAD, y, width: width - PAD * 2, height: laneH, class: "tl-lane-box" }),
      svgEl("text", { x: PAD + 6, y: y + 15, class: "tl-lane-name" }, lane.tier),
      svgEl("text", { x: PAD + 6, y: y + 28, class: "tl-lane-limit" }, lane.limit === null ? "no limit" : `limit ${lane.limit}`),
    );
    // The tier's slots: one row each; the rows past its limit (if it were ever passed) below a line.
    for (let row = 1; row < lane.rows; row += 1) {
      g.append(svgEl("line", { x1: x0, y1: y + row * ROW_H, x2: width - PAD, y2: y + row * ROW_H, class: row === lane.limit ? "tl-limit" : "tl-slot" }));
    }
    for (const bar of lane.bars) {
      const by = y + bar.row * ROW_H + 3;
      if (bar.start - bar.ready > WAIT_SHOWN_S) {
        const wait = svgEl("rect", { x: x0 + bar.ready * scale, y: by + 4, width: (bar.start - bar.ready) * scale, height: ROW_H - 14, class: "tl-wait" });
        wait.append(svgEl("title", {}, `${bar.subtask} waited ${formatDuration(bar.start - bar.ready)}`));
        g.append(wait);
      }
      const barW = Math.max((bar.end - bar.start) * scale, 2);
      const rect = svgEl("rect", { x: x0 + bar.start * scale, y: by, width: barW, height: ROW_H - 6, rx: 3, class: "tl-bar" });
      rect.dataset.subtask = bar.subtask;
      rect.dataset.bucket = bar.bucket;
      rect.dataset.critical = String(bar.critical);
      rect.dataset.estimated = String(bar.estimated);
      const replaced = bar.replacedBy ? `, replaced by ${bar.replacedBy}` : "";
      rect.append(svgEl("title", {}, `${bar.subtask}: ${bar.title} (${bar.state}${replaced}, ${formatDuration(bar.end - bar.start)}${bar.estimated ? ", start not recorded" : ""})${bar.critical ? " · on the critical path" : ""}`));
      const label = bar.subtask + (bar.replacedBy ? ` → ${bar.replacedBy}` : "");
      const chars = Math.max(0, Math.floor((barW - 6) / 6.5));
      g.append(rect);
      if (chars > 1) {
        g.append(svgEl("text", { x: x0 + bar.start * scale + 4, y: by + 12, class: "tl-bar-label" }, label.length > chars ? `${label.slice(0, chars - 1)}…` : label));
      }
    }
    return g;
  }
}
