// The live DAG: subtasks in layers by dependency depth, drawn as SVG and updated in place.

import { bucketOf } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 172;
const NODE_H = 50;
const GAP_X = 56;
const GAP_Y = 14;
const PAD = 10;
const MIN_SCALE = 0.6; // below this the labels are unreadable: scroll instead

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** Subtasks grouped by depth (the longest chain of dependencies above each), ordered so
 * that each node sits near the nodes it depends on. */
export function layers(subtasks) {
  const byId = new Map(subtasks.map((s) => [s.id, s]));
  const depth = new Map();
  const visit = (id, trail) => {
    if (depth.has(id)) return depth.get(id);
    if (trail.has(id)) return 0; // a cycle cannot be in a validated plan; do not loop anyway
    trail.add(id);
    const deps = (byId.get(id).depends_on || []).filter((d) => byId.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map((dep) => visit(dep, trail))) : 0;
    depth.set(id, d);
    return d;
  };
  for (const s of subtasks) visit(s.id, new Set());
  const byDepth = [];
  for (const s of subtasks) (byDepth[depth.get(s.id)] ||= []).push(s);
  const result = byDepth.filter(Boolean); // a cycle can leave a depth empty: no empty column
  const row = new Map();
  result.forEach((layer, index) => {
    if (index > 0) {
      const centre = (s) => {
        const rows = (s.depends_on || []).filter((d) => row.has(d)).map((d) => row.get(d));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      layer.sort((a, b) => centre(a) - centre(b));
    }
    layer.forEach((s, i) => row.set(s.id, i - (layer.length - 1) / 2));
  });
  return result;
}

const shapeOf = (subtasks) => subtasks.map((s) => `${s.id}<${(s.depends_on || []).join(",")}`).join("|");

/** One SVG element showing a plan; `update` redraws only when the plan's shape changes. */
export class Dag {
  constructor(svg, onSelect) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.shape = null;
    this.nodes = new Map();
    this.edges = [];
    this.selected = null;
  }

  update(subtasks) {
    this.svg.toggleAttribute("hidden", subtasks.length === 0);
    const shape = shapeOf(subtasks);
    if (shape !== this.shape) this.build(subtasks, shape);
    for (const s of subtasks) this.paint(this.nodes.get(s.id), s);
    for (const edge of this.edges) {
      const from = this.nodes.get(edge.dataset.from);
      edge.classList.toggle("done", from?.dataset.bucket === "completed");
    }
  }

  select(id) {
    this.selected = id;
    for (const [nodeId, node] of this.nodes) node.classList.toggle("selected", nodeId === id);
  }

  build(subtasks, shape) {
    // A revision grows the plan while it runs: the nodes it adds animate in.
    const known = this.shape === null ? null : new Set(this.nodes.keys());
    this.shape = shape;
    this.nodes.clear();
    this.edges = [];
    this.svg.replaceChildren();
    const grouped = layers(subtasks);
    const tallest = Math.max(1, ...grouped.map((layer) => layer.length));
    const width = PAD * 2 + grouped.length * NODE_W + Math.max(0, grouped.length - 1) * GAP_X;
    const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.style.minWidth = `${Math.round(width * MIN_SCALE)}px`;

    const defs = svgEl("defs");
    const marker = svgEl("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    });
    marker.append(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
    defs.append(marker);
    const edgeGroup = svgEl("g", { class: "edges" });
    const nodeGroup = svgEl("g", { class: "nodes" });
    this.svg.append(defs, edgeGroup, nodeGroup);

    const at = new Map();
    grouped.forEach((layer, column) => {
      const top = PAD + ((tallest - layer.length) * (NODE_H + GAP_Y)) / 2;
      layer.forEach((s, i) => at.set(s.id, { x: PAD + column * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
    });
    for (const s of subtasks) {
      const to = at.get(s.id);
      for (const dep of s.depends_on || []) {
        const from = at.get(dep);
        if (!from) continue;
        const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x - 2, y2 = to.y + NODE_H / 2;
        const bend = (x2 - x1) / 2;
        const path = svgEl("path", {
          class: "edge", "marker-end": "url(#arrow)",
          d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
        });
        path.dataset.from = dep;
        path.dataset.to = s.id;
        edgeGroup.append(path);
        this.edges.push(path);
      }
      const g = this.node(s, to);
      if (known && !known.has(s.id)) g.classList.add("added");
      nodeGroup.append(g);
    }
    this.select(this.selected);
  }

  node(s, { x, y }) {
    const g = svgEl("g", { class: "node", transform: `translate(${x} ${y})`, tabindex: 0, role: "button" });
    g.dataset.subtask = s.id;
    const tooltip = svgEl("title");
    const idText = svgEl("text", { x: 26, y: 21, class: "node-id" });
    idText.textContent = clip(s.id, 18);
    const meta = svgEl("text", { x: 26, y: 38, class: "node-meta" });
    g.append(
      tooltip,
      svgEl("rect", { class: "node-box", width: NODE_W, height: NODE_H, rx: 9 }),
      svgEl("circle", { class: "node-dot", cx: 14, cy: 17, r: 5 }),
      idText,
      meta,
    );
    const choose = () => this.onSelect(s.id);
    g.addEventListener("click", choose);
    g.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose();
      }
    });
    this.nodes.set(s.id, g);
    return g;
  }

  paint(g, s) {
    const replacedBy = typeof s.replaced_by === "string" && s.replaced_by ? s.replaced_by : "";
    const key = `${s.state}|${bucketOf(s)}|${s.tier}|${s.title}|${s.kind}|${replacedBy}`;
    if (!g || g.dataset.key === key) return;
    g.dataset.key = key;
    g.dataset.state = s.state;
    g.dataset.bucket = bucketOf(s);
    g.classList.toggle("replaced", Boolean(replacedBy));
    const state = replacedBy ? `${s.state}, replaced by ${replacedBy}` : s.state;
    g.querySelector(".node-meta").textContent = replacedBy ? `replaced by ${clip(replacedBy, 12)}` : `${s.tier} · ${s.state}`;
    g.querySelector("title").textContent = `${s.id}: ${s.title} (${s.kind}, tier ${s.tier}) — ${state}`;
    g.setAttribute("aria-label", `Subtask ${s.id}, ${s.title}, tier ${s.tier}, ${state}`);
  }
}
