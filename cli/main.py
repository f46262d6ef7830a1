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

from rich.console import Console
from rich.live import Live

from cli.doctor import add_parser as add_doctor_parser
from cli.eval import add_parser as add_eval_parser
from cli.plan_file import read_plan_file
from cli.schedule import add_parser as add_schedule_parser
from core.errors import ConfigurationError, InvalidInput, MissionError
from core.goal_run import GoalParameters
from core.progress import ProgressDocument
from core.settings import Settings, get_settings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
STOP_WAIT_S = 10.0  # how long Ctrl-C waits for the goal run to wind down


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mission", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a goal (or a ready plan) with a live view")
    run.add_argument("goal", nargs="?", help="the goal, in words")
    run.add_argument("--plan", type=Path, help="a plan file (JSON) to run instead of planning")
    run.add_argument("--json", action="store_true", help="print the final progress document")
    run.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="write the goal run's timeline (lanes per tier, critical path) to FILE as SVG",
    )
    up = sub.add_parser("up", help="start the stack: Prefect server, runner, API and page")
    up.add_argument(
        "--local-demo",
        action="store_true",
        help="run without a password (loopback only); same as MISSION_LOCAL_DEMO=true",
    )
    up.add_argument(
        "--go-on",
        action="store_true",
        help="start even when the endpoint check finds a tier unusable",
    )
    plan = sub.add_parser("plan", help="print the validated plan for a goal as JSON")
    plan.add_argument("goal", help="the goal, in words")
    add_schedule_parser(sub)
    add_doctor_parser(sub)
    add_eval_parser(sub)
    return parser


def _run_parameters(args: argparse.Namespace, settings: Settings) -> GoalParameters:
    """The goal run `mission run` asked for: a goal, or a plan file (its goal, unless one is
    given too)."""
    plan = read_plan_file(args.plan) if args.plan is not None else None
    goal = args.goal or (str(plan.get("goal") or "") if plan is not None else None)
    if goal is None:
        raise InvalidInput("give a goal, or --plan FILE")
    return GoalParameters.build(
        goal, plan=plan, max_goal_chars=settings.max_goal_chars, limits=settings.plan_limits()
    )


def _check_timeline_file(path: Path | None) -> None:
    if path is not None and path.suffix.lower() != ".svg":
        raise InvalidInput(f"--timeline writes SVG: name the file *.svg, not {path.name!r}")


def write_timeline(doc: ProgressDocument, path: Path) -> None:
    """The goal run's timeline as SVG, as of its last update."""
    from datetime import UTC, datetime

    from core.timeline import build_timeline, timeline_svg

    now = doc.updated_at or datetime.now(UTC)
    path.write_text(timeline_svg(build_timeline(doc, now), title=doc.goal), encoding="utf-8")


def _require_provider(settings: Settings) -> None:
    if settings.resolved_provider == "anthropic" and not os.environ.get("ANTHROPIC_API_KEY"):
        raise ConfigurationError("MISSION_PROVIDER=anthropic needs ANTHROPIC_API_KEY")


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from flows.inline import plan_here

    _require_provider(settings)
    plan = plan_here(args.goal, settings)
    print(json.dumps(plan.model_dump(mode="json", exclude_none=True), indent=2))
    return EXIT_OK


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from core.local_server import connect

    parameters = _run_parameters(args, settings)
    _check_timeline_file(args.timeline)
    _require_provider(settings)
    # The live view (or the JSON document) is the output, and it holds every subtask's error;
    # Prefect's console copies of its run logs, tracebacks and all, would bury it on stderr.
    # The logs still reach the Prefect UI. Set before Prefect is first imported.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

    console = Console(stderr=args.json)
    with console.status("starting the local Prefect server…"):
        server = connect(settings.home, settings.prefect_port, settings.prefect_api_url)
    try:
        return _run_and_watch(parameters, console, as_json=args.json, timeline=args.timeline)
    finally:
        _ship_run_logs()
        if server is not None:
            server.stop()


def _ship_run_logs() -> None:
    """Send the goal run's queued logs now, while the Prefect server that takes them is up:
    shipped at exit, after `mission run` stopped its own server, they end stderr with
    "Error logging to API" and tracebacks."""
    import logging

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            handler.flush()


async def _until_ended(worker: threading.Thread) -> None:
    """Until the goal run's thread has ended. Polled, not joined in an executor thread:
    Ctrl-C must not wait for that thread before it can cancel the run."""
    while worker.is_alive():
        await asyncio.sleep(0.1)


def _run_and_watch(
    parameters: GoalParameters, console: Console, as_json: bool, timeline: Path | None = None
) -> int:
    # Prefect is imported only now, after `connect` has pointed it at the server.
    from prefect.client.orchestration import get_client

    from cli.live import LiveView, render_final
    from flows.inline import cancel_goal_run, create_goal_run, execute_goal_run, follow_streamed
    from services.progress import read_progress
    from services.watch import watch_progress

    flow_run = create_goal_run(parameters)
    failure: list[BaseException] = []

    def execute() -> None:
        try:
            execute_goal_run(flow_run)
        except BaseException as exc:  # reported by the watcher below
            failure.append(exc)

    view = LiveView()
    # The live view's last line of each running subtask's text (the JSON output has none).
    if not as_json:
        follow_streamed(lambda delta: view.add(delta.subtask, delta.text, delta.restart))
    worker = threading.Thread(target=execute, name="goal-run", daemon=True)
    worker.start()

    async def watch() -> ProgressDocument:
        latest: list[ProgressDocument] = []
        async with get_client() as client:
            with Live(view, console=console, refresh_per_second=8, transient=True) as live:

                async def follow() -> None:
                    async for doc in watch_progress(client, flow_run.id):
                        view.doc = doc
                        live.refresh()
                        latest.append(doc)

                follower = asyncio.create_task(follow())
                ended = asyncio.create_task(_until_ended(worker))
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

    async def final() -> ProgressDocument:
        async with get_client() as client:
            return await read_progress(client, flow_run.id)

    try:
        doc = asyncio.run(watch())
    except KeyboardInterrupt:
        # The run stops here and now (nothing starts, what is in flight is aborted), and
        # ends Cancelled with what it had; its final document is printed as usual.
        cancel_goal_run(flow_run.id, "interrupted at the terminal")
        console.print(f"[red]cancelling goal run {flow_run.id}…[/red]")
        worker.join(timeout=STOP_WAIT_S)

        doc = asyncio.run(final())
    worker.join(timeout=30)
    if timeline is not None:
        # Read again now that the run has ended: the last documents came from events, and a
        # quick subtask's start may have reached the database only after them.
        write_timeline(asyncio.run(final()), timeline)
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
        if args.command == "eval":
            from cli.eval import cmd_eval

            _require_provider(settings)
            return cmd_eval(args, settings)
        if args.command == "up":
            from cli.up import cmd_up

            if args.local_demo:
                settings = settings.model_copy(update={"local_demo": True})
            _require_provider(settings)
            return cmd_up(settings, Console(), go_on=args.go_on)
        if args.command == "doctor":
            from cli.doctor import cmd_doctor

            _require_provider(settings)
            return cmd_doctor(args, settings, Console())
        return cmd_run(args, settings)
    except (InvalidInput, ConfigurationError) as exc:
        print(f"mission: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except MissionError as exc:
        print(f"mission: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
