"""A goal run's timeline (a Gantt chart) from its progress document, and the same as SVG.

The page draws the same picture live (api/static/timeline.js, the same rules): one lane per
tier, a bar per subtask that started, from its start to its end (or to now while it runs), the
time it waited shaded, the critical path marked.

- A subtask's predecessors are its dependencies and the failed subtask it replaced (its
  failure is why the replacement ran at all).
- It waited from when its last predecessor ended (for a subtask without any, from the first
  start of its plan revision) to its own start: a slot of its tier, or the runner, held it.
- The critical path is the chain that ended last: from the subtask that ended last, back
  through the predecessor that ended last, to one without predecessors.
- A subtask that ended without a recorded start (Prefect's database sometimes lacks a quick
  task run's start) is drawn from its last predecessor's end, marked as estimated.
- Bars are packed into rows by their start and end, so a tier's rows are the slots it used;
  the tier's concurrency limit is drawn as a line under its last allowed row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from core.progress import ProgressDocument, SubtaskProgress

MAX_DRAWN_LIMIT = 8  # a larger limit is named in the label, not drawn as empty rows
WAIT_SHOWN_S = 0.05  # a shorter wait is the engine's own lag, not drawn (timeline.js too)


@dataclass(frozen=True)
class Bar:
    subtask: str
    title: str
    tier: str
    state: str
    bucket: str
    start: float  # seconds since the timeline's origin
    end: float
    ready: float  # when it could have started; < start when it waited
    running: bool
    critical: bool = False
    row: int = 0
    replaced_by: str | None = None
    estimated: bool = False  # its start was not recorded: drawn from its last predecessor's end

    @property
    def waited(self) -> float:
        return max(0.0, self.start - self.ready)


@dataclass(frozen=True)
class Lane:
    tier: str
    limit: int | None
    rows: int
    bars: list[Bar]


@dataclass(frozen=True)
class Timeline:
    origin: datetime | None
    span: float  # seconds from the origin to the last end
    lanes: list[Lane]
    critical: list[str]  # subtask ids, first to last


def _predecessors(subtasks: list[SubtaskProgress]) -> dict[str, list[str]]:
    preds = {s.id: list(s.depends_on) for s in subtasks}
    for s in subtasks:
        if s.replaced_by in preds:
            preds[s.replaced_by].append(s.id)
    return preds


def critical_path(
    intervals: dict[str, tuple[float, float]], preds: dict[str, list[str]]
) -> list[str]:
    """The chain that ended last, first to last; `intervals` holds the started subtasks
    (id -> start, end) in plan order."""
    if not intervals:
        return []
    last = max(intervals, key=lambda i: intervals[i][1])  # the first of equal ends
    path = [last]
    seen = {last}
    while True:
        before = [p for p in preds.get(path[-1], []) if p in intervals and p not in seen]
        if not before:
            return path[::-1]
        step = max(before, key=lambda i: intervals[i][1])
        path.append(step)
        seen.add(step)


def pack_rows(spans: list[tuple[float, float]]) -> list[int]:
    """A row per span (in the given order), each in the first row free at its start."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    row_ends: list[float] = []
    rows = [0] * len(spans)
    for i in order:
        start, end = spans[i]
        free = next((r for r, e in enumerate(row_ends) if e <= start + 1e-6), None)
        if free is None:
            free = len(row_ends)
            row_ends.append(end)
        row_ends[free] = end
        rows[i] = free
    return rows


def build_timeline(
    doc: ProgressDocument, now: datetime, limits: dict[str, int | None] | None = None
) -> Timeline:
    """The timeline of `doc` as of `now` (the end of what is still running)."""
    limits = limits if limits is not None else {n: t.limit for n, t in doc.tiers.items()}
    preds = _predecessors(doc.subtasks)
    by_id = {s.id: s for s in doc.subtasks}
    starts: dict[str, datetime] = {}
    for s in doc.subtasks:
        if s.started_at is not None:
            starts[s.id] = s.started_at
        elif s.ended_at is not None:
            ends = [e for p in preds[s.id] if p in by_id and (e := by_id[p].ended_at)]
            starts[s.id] = min(max(ends), s.ended_at) if ends else s.ended_at
    started = [s for s in doc.subtasks if s.id in starts]
    if not started:
        return Timeline(origin=None, span=0.0, lanes=[], critical=[])
    origin = min(starts.values())

    def at(moment: datetime) -> float:
        return max(0.0, (moment - origin).total_seconds())

    intervals = {s.id: (at(starts[s.id]), at(s.ended_at or now)) for s in started}
    first_of_revision: dict[int, float] = {}
    for s in started:
        first_of_revision[s.revision] = min(
            first_of_revision.get(s.revision, intervals[s.id][0]), intervals[s.id][0]
        )
    critical = critical_path(intervals, preds)
    on_path = set(critical)

    def ready(s: SubtaskProgress) -> float:
        before = [p for p in preds[s.id] if p in by_id]
        if not before:
            return first_of_revision[s.revision]
        ends = [intervals[p][1] for p in before if p in intervals and by_id[p].ended_at]
        return max(ends) if len(ends) == len(before) else intervals[s.id][0]

    lanes: list[Lane] = []
    for tier in dict.fromkeys(s.tier for s in doc.subtasks):
        mine = [s for s in started if s.tier == tier]
        if not mine:
            continue
        rows = pack_rows([intervals[s.id] for s in mine])
        bars = [
            Bar(
                subtask=s.id,
                title=s.title,
                tier=tier,
                state=s.state,
                bucket=s.bucket,
                start=intervals[s.id][0],
                end=intervals[s.id][1],
                ready=min(ready(s), intervals[s.id][0]),
                running=s.ended_at is None,
                critical=s.id in on_path,
                row=row,
                replaced_by=s.replaced_by,
                estimated=s.started_at is None,
            )
            for s, row in zip(mine, rows, strict=True)
        ]
        limit = limits.get(tier)
        drawn = limit if limit is not None and limit <= MAX_DRAWN_LIMIT else 0
        lanes.append(Lane(tier=tier, limit=limit, rows=max(1, max(rows) + 1, drawn), bars=bars))
    span = max(end for _, end in intervals.values())
    return Timeline(origin=origin, span=span, lanes=lanes, critical=critical)


def tick_step(span: float) -> float:
    """Seconds between the axis' ticks: about six of them, at a round number."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= 8:
            return float(step)
    return 7200.0


# The SVG's geometry and colours (the page's tasks.css uses the same palette).
LABEL_W, PLOT_W, ROW_H, LANE_GAP, AXIS_H, PAD = 150, 720, 22, 10, 26, 12
COLOURS = {
    "completed": "#2f9e66",
    "running": "#2f6fdb",
    "failed": "#d0453a",
    "cancelled": "#8a8f98",
    "skipped": "#b9bec6",
    "pending": "#b9bec6",
}
CRITICAL = "#e8a21a"
UNRECORDED = ", start not recorded"


_QUOTE = {'"': "&quot;"}


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def timeline_svg(timeline: Timeline, title: str = "") -> str:
    """The timeline as a standalone SVG document (every text escaped)."""
    span = max(timeline.span, 1.0)
    scale = PLOT_W / span
    height = AXIS_H + sum(lane.rows * ROW_H + LANE_GAP for lane in timeline.lanes) + PAD * 2
    top_title = 22 if title else 0
    height += top_title + (16 if timeline.critical else 0)
    width = LABEL_W + PLOT_W + PAD * 2
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="11">',
        '<defs><pattern id="wait" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eef0f3"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#b9bec6" stroke-width="2"/></pattern></defs>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        out.append(
            f'<text x="{PAD}" y="{PAD + 10}" font-size="13" font-weight="600">'
            f"{escape(_clip(title, 110))}</text>"
        )
    x0, y = PAD + LABEL_W, PAD + top_title + AXIS_H
    plot_bottom = y + sum(lane.rows * ROW_H + LANE_GAP for lane in timeline.lanes)
    step = tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        x = x0 + tick * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{y - 6}" x2="{x:.1f}" y2="{plot_bottom}" stroke="#e3e6ea"/>'
            f'<text x="{x:.1f}" y="{y - 10}" text-anchor="middle" fill="#5b6270">'
            f"{tick:g} s</text>"
        )
        tick += step
    for lane in timeline.lanes:
        lane_h = lane.rows * ROW_H
        limit = "no limit" if lane.limit is None else f"limit {lane.limit}"
        out.append(
            f'<rect x="{PAD}" y="{y}" width="{width - 2 * PAD}" height="{lane_h}" '
            f'fill="#f6f7f9"/>'
            f'<text class="lane" x="{PAD + 6}" y="{y + 15}" font-weight="600">'
            f"{escape(lane.tier)}</text>"
            f'<text x="{PAD + 6}" y="{y + 28}" fill="#5b6270">{limit}</text>'
        )
        for row in range(1, lane.rows):  # the tier's slots; a red line under its limit
            colour = "#d0453a" if row == lane.limit else "#e3e6ea"
            out.append(
                f'<line x1="{x0}" y1="{y + row * ROW_H}" x2="{x0 + PLOT_W}" '
                f'y2="{y + row * ROW_H}" stroke="{colour}" stroke-dasharray="4 3"/>'
            )
        for bar in lane.bars:
            by = y + bar.row * ROW_H + 3
            if bar.waited > WAIT_SHOWN_S:
                out.append(
                    f'<rect x="{x0 + bar.ready * scale:.1f}" y="{by + 4}" '
                    f'width="{bar.waited * scale:.1f}" height="{ROW_H - 14}" fill="url(#wait)">'
                    f"<title>{escape(bar.subtask)} waited {bar.waited:.1f} s</title></rect>"
                )
            stroke = f' stroke="{CRITICAL}" stroke-width="2.5"' if bar.critical else ""
            stroke += ' stroke-dasharray="3 2" opacity="0.6"' if bar.estimated else ""
            label = bar.subtask + (f" → {bar.replaced_by}" if bar.replaced_by else "")
            bar_w = max((bar.end - bar.start) * scale, 2.0)
            out.append(
                f'<rect data-subtask="{escape(bar.subtask, _QUOTE)}" '
                f'data-critical="{str(bar.critical).lower()}" '
                f'x="{x0 + bar.start * scale:.1f}" y="{by}" width="{bar_w:.1f}" '
                f'height="{ROW_H - 6}" rx="3" fill="{COLOURS.get(bar.bucket, "#b9bec6")}"'
                f"{stroke}><title>{escape(bar.subtask)}: {escape(bar.title)} ({bar.state}, "
                f"{bar.end - bar.start:.1f} s{UNRECORDED if bar.estimated else ''})</title></rect>"
                f'<text x="{x0 + bar.start * scale + 4:.1f}" y="{by + 12}" fill="#ffffff">'
                f"{escape(_clip(label, max(1, int(bar_w / 6.5))))}</text>"
            )
        y += lane_h + LANE_GAP
    if timeline.critical:
        path = " → ".join(timeline.critical)
        out.append(
            f'<text x="{PAD}" y="{height - PAD}" fill="#5b6270">critical path: '
            f"{escape(_clip(path, 140))}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
