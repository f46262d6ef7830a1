"""`mission eval`: run the evaluation suite against the configured endpoint and score it.

Each goal of the suite (services/eval_suite.py) is planned once (or given its ready plan), then
that same plan runs three times in this process: with the tiers as configured, as planned; the same
with every tier's concurrency 1 (the subtasks of a tier call their model one at a time: the
plan without its parallelism, where its parallel subtasks share a tier); and with every tier on
the deep model. Each run's progress document is scored by code (services/evaluation.py) and the
results go to `docs/eval.md` (services/eval_report.py) and, with `--json`, stdout. A run that
fails is counted with its error; the suite goes on. A one-subtask goal run before the first
goal, not scored, takes the cost of starting up out of the first measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from core.errors import InvalidInput
from core.goal_run import GoalParameters
from core.settings import Settings, forget_settings, get_settings
from services import eval_report
from services.eval_suite import CORPUS, EvalGoal, load_suite, ready_plan
from services.evaluation import (
    CONFIGURATIONS,
    EvalResult,
    GoalScore,
    Routing,
    RunScore,
    Schedule,
    score_run,
    summarise,
)

if TYPE_CHECKING:
    from core.progress import ProgressDocument

# Settings the reproducing command repeats when they are set (never secrets).
SHOWN_ENV = (
    "MISSION_PROVIDER",
    "ANTHROPIC_BASE_URL",
    "MISSION_SIMULATED_LATENCY_MS",
    "MISSION_TIERS",
    "MISSION_TIER_LIMITS",
    "MISSION_PLANNER_TIER",
    "MISSION_JOIN_TIER",
    "MISSION_MODEL_TIMEOUT_S",
    "MISSION_SDK_MAX_RETRIES",
    "MISSION_SUBTASK_RETRIES",
    "MISSION_STRUCTURED",
    "MISSION_MAX_REPLANS",
)


def add_parser(sub: Any) -> None:
    run = sub.add_parser(
        "eval",
        help="score a suite of goals over a local corpus: accuracy, citations, cost, time, "
        "speedup, what routing saves",
    )
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--goals", type=int, help="run only the first N goals of the suite")
    run.add_argument(
        "--ready-plans",
        action="store_true",
        help="run the suite's ready plans instead of asking the planner",
    )
    run.add_argument(
        "--run-budget-s", type=float, help="halt each goal run after this many seconds"
    )
    run.add_argument("--label", help="the section of the report to write (default: the endpoint)")
    run.add_argument(
        "--out", type=Path, default=Path("docs/eval.md"), help="the report (default docs/eval.md)"
    )


def endpoint_label(settings: Settings) -> tuple[str | None, str]:
    """The endpoint evaluated, and the report section's default name."""
    if settings.resolved_provider == "simulated":
        return None, "Simulated provider"
    base = os.environ.get("ANTHROPIC_BASE_URL")
    return base, f"Anthropic API at {base}" if base else "Anthropic API"


def reproduce(args: argparse.Namespace, provider: str) -> str:
    """The command line that runs this evaluation again (settings that matter, no secrets)."""
    shown = [n for n in SHOWN_ENV if provider == "anthropic" or n != "ANTHROPIC_BASE_URL"]
    env = [f"{name}={shlex.quote(os.environ[name])}" for name in shown if name in os.environ]
    if provider == "anthropic":
        env.append("ANTHROPIC_API_KEY=...")
    flags = [
        *(["--goals", str(args.goals)] if args.goals else []),
        *(["--ready-plans"] if args.ready_plans else []),
        *(["--run-budget-s", f"{args.run_budget_s:g}"] if args.run_budget_s else []),
        *(["--label", shlex.quote(args.label)] if args.label else []),
        *(["--out", shlex.quote(str(args.out))] if args.out != Path("docs/eval.md") else []),
        *(["--json"] if args.json else []),
    ]
    return " ".join([*env, "mission", "eval", *flags])


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[Settings]:
    """The settings with `changes` to the environment, for the block; then as before."""
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    forget_settings()
    try:
        yield get_settings()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_settings()


def deep_model(settings: Settings) -> str:
    tier = "deep" if "deep" in settings.tiers else settings.planner_tier
    return settings.tiers[tier].model


def run_environment(settings: Settings, routing: Routing, schedule: Schedule) -> dict[str, str]:
    """The settings of one configuration: search the suite's corpus (and nothing else); every
    tier on the deep model or as configured; every tier's concurrency 1 or as configured."""
    changes = {"MISSION_SEARCH_CORPUS": str(CORPUS), "MISSION_SEARCH_URL": "", "MISSION_SEARCH": ""}
    if routing == "deep":
        model = deep_model(settings)
        tiers = {n: t.model_copy(update={"model": model}) for n, t in settings.tiers.items()}
        changes["MISSION_TIERS"] = json.dumps({n: t.model_dump() for n, t in tiers.items()})
    if schedule == "concurrency 1":
        changes["MISSION_TIER_LIMITS"] = ",".join(f"{tier}=1" for tier in settings.tiers)
    return changes


def _plan_for(goal: EvalGoal, ready: bool, score: GoalScore) -> dict[str, Any] | None:
    """The plan every run of `goal` executes; None (the error noted in `score`) when the
    planner could not make one."""
    from flows.inline import plan_here

    if ready:
        plan = ready_plan(goal.goal)
    else:
        started = time.monotonic()
        try:
            plan = plan_here(goal.goal, get_settings()).model_dump(mode="json", exclude_none=True)
        except Exception as exc:  # any failure of the endpoint is a result, not a crash
            score.plan_error = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            score.plan_s = time.monotonic() - started
    score.subtasks = len(plan["subtasks"])
    return plan


def _run_goal(
    goal: EvalGoal,
    plan: dict[str, Any],
    routing: Routing,
    schedule: Schedule,
    settings: Settings,
    budget_s: float | None,
) -> RunScore:
    """Run the plan once as a goal run in this process and score its progress document."""
    from flows.inline import create_goal_run, execute_goal_run

    parameters = GoalParameters.build(
        goal.goal,
        plan=plan,
        budget={"max_seconds": budget_s} if budget_s else None,
        max_goal_chars=settings.max_goal_chars,
        limits=settings.plan_limits(),
    )
    started = time.monotonic()
    try:
        flow_run = create_goal_run(parameters)
        started = time.monotonic()
        execute_goal_run(flow_run)
        wall_s = time.monotonic() - started
        doc = asyncio.run(_progress(flow_run.id))
    except Exception as exc:  # counted with its error; the suite goes on
        wall_s = time.monotonic() - started
        error = f"{type(exc).__name__}: {exc}"
        return RunScore(routing=routing, schedule=schedule, error=error, wall_s=wall_s)
    return score_run(doc, goal, routing, schedule, wall_s)


async def _progress(flow_run_id: Any) -> ProgressDocument:
    from prefect.client.orchestration import get_client

    from services.progress import read_progress

    async with get_client() as client:
        return await read_progress(client, flow_run_id)


def evaluate(
    goals: list[EvalGoal], ready: bool, budget_s: float | None, console: Console
) -> tuple[list[GoalScore], Settings]:
    """Plan and run every goal under every configuration; the scores, and the settings as
    configured (before this command's changes)."""
    configured = get_settings()
    if goals:
        # Not scored: the first goal run of a process pays for imports and the corpus index.
        with environment(run_environment(configured, "configured", "as planned")) as settings:
            warm_up = {"goal": goals[0].goal, "subtasks": ready_plan(goals[0].goal)["subtasks"][:1]}
            _run_goal(goals[0], warm_up, "configured", "as planned", settings, budget_s)
    scores = []
    for goal in goals:
        score = GoalScore(id=goal.id, goal=goal.goal, plan_from="suite" if ready else "planner")
        scores.append(score)
        with environment(run_environment(configured, "configured", "as planned")):
            plan = _plan_for(goal, ready, score)
        if plan is None:
            console.print(f"[red]{goal.id}: planning failed: {score.plan_error}[/red]")
            continue
        for routing, schedule in CONFIGURATIONS:
            with environment(run_environment(configured, routing, schedule)) as settings:
                run = _run_goal(goal, plan, routing, schedule, settings, budget_s)
            score.runs.append(run)
            facts = _facts_line(run)
            console.print(
                f"{goal.id} ({routing}, {schedule}): {run.state or 'no run'} in "
                f"{run.wall_s:.1f} s; {facts}" + (f"; [red]{run.error}[/red]" if run.error else "")
            )
    return scores, configured


def _facts_line(run: RunScore) -> str:
    if run.answer is None:
        return "no answer"
    total = len(run.answer.found) + len(run.answer.missing)
    return f"{len(run.answer.found)}/{total} facts, {len(run.answer.decoys)} decoys"


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from core.local_server import connect

    suite = load_suite()
    if args.goals is not None and args.goals < 1:
        raise InvalidInput("--goals must be at least 1")
    goals = suite.goals[: args.goals] if args.goals else suite.goals
    console = Console(stderr=True)
    endpoint, label = endpoint_label(settings)
    started_at = datetime.now(UTC)
    # A failed goal run is a result here, counted and reported with its error: Prefect's own
    # tracebacks of failed task runs would bury the lines that say so.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    server = connect(settings.home, settings.prefect_port, settings.prefect_api_url)
    try:
        scores, configured = evaluate(goals, args.ready_plans, args.run_budget_s, console)
    finally:
        if server is not None:
            server.stop()
    result = EvalResult(
        label=args.label or label,
        provider=configured.resolved_provider,
        endpoint=endpoint,
        models={name: tier.model for name, tier in configured.tiers.items()},
        deep_model=deep_model(configured),
        plan_from="suite" if args.ready_plans else "planner",
        started_at=started_at,
        command=reproduce(args, configured.resolved_provider),
        goals=scores,
        summary=summarise(scores, goals),
    )
    _write_report(result, args.out)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print("\n".join(eval_report.section(result, _plot_path(result, args.out).name)))
    console.print(f"wrote {args.out}")
    done = all(r.error is None for g in scores for r in g.runs) and not any(
        g.plan_error for g in scores
    )
    return 0 if done else 1


def _plot_path(result: EvalResult, out: Path) -> Path:
    return out.parent / "eval" / f"{eval_report.slug(result.label)}.svg"


def _write_report(result: EvalResult, out: Path) -> None:
    plot = _plot_path(result, out)
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_text(eval_report.plot(result), encoding="utf-8")
    lines = eval_report.section(result, plot.relative_to(out.parent).as_posix())
    eval_report.write_section(out, result.label, lines)
