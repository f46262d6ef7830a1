"""The `mission` command: plan or run a goal from the terminal.

Exit codes: 0 the goal run completed, 1 it failed or was cancelled (or the stack failed),
2 the input was invalid (the reason goes to stderr, without a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from cli.schedule import add_parser as add_schedule_parser
from core.errors import ConfigurationError, InvalidInput, MissionError
from core.plan import check_goal, validate_plan
from core.progress import ProgressDocument
from core.settings import Settings, get_settings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mission", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a goal (or a ready plan) with a live view")
    run.add_argument("goal", nargs="?", help="the goal, in words")
    run.add_argument("--plan", type=Path, help="a plan file (JSON) to run instead of planning")
    run.add_argument("--json", action="store_true", help="print the final progress document")
    up = sub.add_parser("up", help="start the stack: Prefect server, runner, API and page")
    up.add_argument(
        "--local-demo",
        action="store_true",
        help="run without a password (loopback only); same as MISSION_LOCAL_DEMO=true",
    )
    plan = sub.add_parser("plan", help="print the validated plan for a goal as JSON")
    plan.add_argument("goal", help="the goal, in words")
    add_schedule_parser(sub)
    return parser


def _read_plan(path: Path, goal: str | None, settings: Settings) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read plan file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"plan file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and goal:
        data["goal"] = goal
    return validate_plan(data, settings.plan_limits()).model_dump(mode="json")


def _require_provider(settings: Settings) -> None:
    if settings.resolved_provider == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise ConfigurationError("MISSION_PROVIDER=anthropic needs ANTHROPIC_API_KEY")


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from tasks.planner import make_plan

    _require_provider(settings)
    plan = make_plan(args.goal, settings)
    print(json.dumps(plan.model_dump(mode="json", exclude_none=True), indent=2))
    return EXIT_OK


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from core.local_server import connect

    if args.plan is not None:
        plan: dict[str, Any] | None = _read_plan(args.plan, args.goal, settings)
        goal = str(plan["goal"]) if plan else ""
    elif args.goal is None:
        raise InvalidInput("give a goal, or --plan FILE")
    else:
        plan, goal = None, check_goal(args.goal, settings.max_goal_chars)
    _require_provider(settings)

    console = Console(stderr=args.json)
    with console.status("starting the local Prefect server…"):
        server = connect(settings.home, settings.prefect_port, settings.prefect_api_url)
    try:
        return _run_and_watch(goal, plan, console, as_json=args.json)
    finally:
        if server is not None:
            server.stop()


def _run_and_watch(goal: str, plan: dict[str, Any] | None, console: Console, as_json: bool) -> int:
    # Prefect is imported only now, after `connect` has pointed it at the server.
    from prefect.client.orchestration import get_client

    from cli.live import render, render_final
    from flows.inline import cancel_goal_run, create_goal_run, execute_goal_run
    from flows.progress import read_progress, watch_progress

    flow_run = create_goal_run(goal, plan)
    failure: list[BaseException] = []

    def execute() -> None:
        try:
            execute_goal_run(flow_run)
        except BaseException as exc:  # reported by the watcher below
            failure.append(exc)

    worker = threading.Thread(target=execute, name="goal-run", daemon=True)
    worker.start()

    async def watch() -> ProgressDocument:
        latest: list[ProgressDocument] = []
        async with get_client() as client:
            with Live(console=console, refresh_per_second=8, transient=True) as live:

                async def follow() -> None:
                    async for doc in watch_progress(client, flow_run.id):
                        live.update(render(doc))
                        latest.append(doc)

                follower = asyncio.create_task(follow())
                ended = asyncio.create_task(asyncio.to_thread(worker.join))
                await asyncio.wait({follower, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not follower.done():
                    # The run's thread is gone; its last events may still be on their way.
                    try:
                        await asyncio.wait_for(follower, timeout=5)
                    except TimeoutError:
                        latest.append(await read_progress(client, flow_run.id))
                if not follower.cancelled() and (error := follower.exception()):
                    raise error
        return latest[-1]

    try:
        doc = asyncio.run(watch())
    except KeyboardInterrupt:
        cancel_goal_run(flow_run.id, "interrupted at the terminal")
        console.print(f"[red]cancelled goal run {flow_run.id}[/red]")
        return EXIT_FAILED
    worker.join(timeout=30)
    if as_json:
        print(doc.model_dump_json(indent=2))
    else:
        console.print(render_final(doc))
    if failure and not doc.finished:
        console.print(f"[red]the goal run stopped: {failure[0]}[/red]")
    return EXIT_OK if doc.state == "Completed" else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
        if args.command == "plan":
            return cmd_plan(args, settings)
        if args.command == "schedule":
            from cli.schedule import cmd_schedule

            return cmd_schedule(args, settings)
        if args.command == "up":
            from cli.up import cmd_up

            if args.local_demo:
                settings = settings.model_copy(update={"local_demo": True})
            _require_provider(settings)
            return cmd_up(settings, Console())
        return cmd_run(args, settings)
    except (InvalidInput, ConfigurationError) as exc:
        print(f"mission: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except MissionError as exc:
        print(f"mission: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
