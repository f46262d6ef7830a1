"""`docs/eval.md` from an evaluation: a section per endpoint, with its tables and its plot (an
SVG written here, so the report needs no plotting library)."""

from __future__ import annotations

import html
import re
from collections import Counter
from pathlib import Path

from services.evaluation import ConfigurationScore, EvalResult, GoalScore, RunScore

TITLE = "# Evaluation"
WHAT = {
    ("configured", "as planned"): "tiers as configured, as planned",
    ("configured", "concurrency 1"): "tiers as configured, every tier's concurrency 1",
    ("deep", "as planned"): "every tier on the deep model, as planned",
}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:.4f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "eval"


def _configuration_row(c: ConfigurationScore) -> str:
    cited = f"{c.citations_verified}/{c.citations_total} ({_pct(c.citation_validity)})"
    return (
        f"| {WHAT[c.routing, c.schedule]} | {c.completed}/{c.runs} | {c.with_result}/{c.runs} | "
        f"{_pct(c.accuracy)} | {c.decoys_stated} of {c.decoys_total} | {cited} | "
        f"{_usd(c.cost_usd)} | {c.wall_s:.1f} s |"
    )


def _facts(run: RunScore | None) -> str:
    if run is None or run.answer is None:
        return "no answer"
    total = len(run.answer.found) + len(run.answer.missing)
    decoys = f"; decoys: {', '.join(run.answer.decoys)}" if run.answer.decoys else ""
    return f"{len(run.answer.found)}/{total}{decoys}"


def _goal_row(g: GoalScore) -> str:
    planned, serial = g.run("configured", "as planned"), g.run("configured", "concurrency 1")
    deep = g.run("deep", "as planned")
    if g.plan_error is not None:
        return f"| `{g.id}` | planning failed (below) | | | | | |"
    failed = sum(r.error is not None for r in g.runs)
    cited = f"{planned.citations_verified}/{planned.citations_total}" if planned else "—"
    costs = " / ".join(_usd(r.cost_usd) if r else "—" for r in (planned, deep))
    times = " / ".join(f"{r.wall_s:.1f} s" if r else "—" for r in (planned, serial))
    return (
        f"| `{g.id}` | {_facts(planned)} | {cited} | {costs} | {times} | {_ratio(g.speedup)} | "
        f"{failed} of {len(g.runs)} |"
    )


def _cell(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _errors(result: EvalResult) -> list[str]:
    """Every distinct error of the evaluation (a failed plan, a run's, a subtask's, with the
    subtask's id taken off), most frequent first, with how often it was met."""
    seen: Counter[str] = Counter()
    for g in result.goals:
        found = [g.plan_error] if g.plan_error else []
        for r in g.runs:
            found += [r.error] if r.error else []
            for entry in r.subtask_errors:
                subtask, _, error = entry.partition(": ")
                found.append(error.removeprefix(f"{subtask}: "))  # the gateway names it too
        seen.update(_cell(error, 500) for error in found)
    if not seen:
        return []
    return ["", "What went wrong (each distinct error, and how often):", ""] + [
        f"- {count}×: {error}" for error, count in seen.most_common()
    ]


def section(result: EvalResult, plot: str) -> list[str]:
    """The markdown of one evaluation: what ran, the configurations, the plot, the goals."""
    models = ", ".join(f"{tier} `{model}`" for tier, model in result.models.items())
    saves = (
        f"{result.summary.routing_saves:.0%} of what every tier on `{result.deep_model}` costs"
        if result.summary.routing_saves is not None
        else "nothing measurable (a run failed, or a cost is unknown or zero)"
    )
    return [
        f"## {result.label}",
        "",
        f"Measured {result.started_at:%Y-%m-%d %H:%M} UTC, provider `{result.provider}`"
        + (f" at `{result.endpoint}`" if result.endpoint else "")
        + f"; {len(result.goals)} goals, plans from the {result.plan_from}. Reproduce with:",
        "",
        f"    {result.command}",
        "",
        f"Models: {models}.",
        "",
        "| runs | completed | with a result | answer accuracy | decoys stated | citations verified "
        "| cost | wall time |",
        "|---|---|---|---|---|---|---|---|",
        *(_configuration_row(c) for c in result.summary.configurations),
        "",
        "Speedup as planned over every tier's concurrency 1: "
        f"{_ratio(result.summary.speedup)}. "
        f"Routing as configured saves {saves}.",
        "",
        f"![wall time and cost per goal]({plot})",
        "",
        "| goal | facts stated | citations verified | cost: as configured / all deep "
        "| wall time: as planned / concurrency 1 | speedup | runs that failed |",
        "|---|---|---|---|---|---|---|",
        *(_goal_row(g) for g in result.goals),
        *_errors(result),
    ]


def write_section(out: Path, label: str, lines: list[str]) -> None:
    """Put `lines` in `out` between this label's markers, replacing what was there and
    keeping every other section (another endpoint's results)."""
    begin, end = f"<!-- eval: {label} -->", f"<!-- /eval: {label} -->"
    text = out.read_text(encoding="utf-8") if out.exists() else TITLE + "\n"
    block = "\n".join([begin, *lines, end])
    head, found, rest = text.partition(begin)
    if found:
        text = head + block + rest.partition(end)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def _bars(
    x0: float, title: str, goals: list[str], pairs: list[tuple[float | None, float | None]],
    legend: tuple[str, str], unit: str,
) -> list[str]:  # fmt: skip
    """One panel of grouped bars: a pair of values per goal (None: no bar)."""
    width, height, top = 390.0, 220.0, 40.0
    peak = max((v for pair in pairs for v in pair if v is not None), default=0.0) or 1.0
    step = width / max(len(goals), 1)
    colours = ("#3b6fb6", "#e0883a")
    out = [
        f'<text x="{x0}" y="20" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{x0}" y1="{top + height}" x2="{x0 + width}" y2="{top + height}" '
        'stroke="#444"/>',
        f'<text x="{x0}" y="{top - 6}" font-size="11">max {peak:.4g} {unit}</text>',
    ]
    for i, (goal, pair) in enumerate(zip(goals, pairs, strict=True)):
        for j, value in enumerate(pair):
            if value is None:
                continue
            h = height * value / peak
            x = x0 + i * step + step * (0.15 + 0.35 * j)
            out.append(
                f'<rect x="{x:.1f}" y="{top + height - h:.1f}" width="{step * 0.33:.1f}" '
                f'height="{h:.1f}" fill="{colours[j]}"><title>{html.escape(goal)}: '
                f"{value:.4g} {unit}</title></rect>"
            )
        lx, ly = x0 + i * step + step / 2, top + height + 12
        out.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" text-anchor="end" '
            f'transform="rotate(-35 {lx:.1f} {ly:.1f})">{html.escape(goal)}</text>'
        )
    for j, name in enumerate(legend):
        y = top + height + 90 + 16 * j
        out.append(f'<rect x="{x0}" y="{y - 10}" width="10" height="10" fill="{colours[j]}"/>')
        out.append(f'<text x="{x0 + 16}" y="{y}" font-size="11">{html.escape(name)}</text>')
    return out


def _wall(run: RunScore | None) -> float | None:
    return None if run is None else run.wall_s


def _cost(run: RunScore | None) -> float | None:
    return None if run is None else run.cost_usd


def plot(result: EvalResult) -> str:
    """An SVG: wall time per goal (as planned, every tier's concurrency 1) and cost per goal
    (tiers as configured, every tier on the deep model)."""

    ids = [g.id for g in result.goals]
    times = [
        (_wall(g.run("configured", "as planned")), _wall(g.run("configured", "concurrency 1")))
        for g in result.goals
    ]
    costs = [
        (_cost(g.run("configured", "as planned")), _cost(g.run("deep", "as planned")))
        for g in result.goals
    ]
    body = _bars(
        50, "Wall time per goal", ids, times, ("as planned", "every tier's concurrency 1"), "s"
    )
    body += _bars(
        500, "Cost per goal", ids, costs, ("tiers as configured", "every tier on deep"), "USD"
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="900" height="380" '
        'font-family="sans-serif" font-size="13">\n'
        '<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
