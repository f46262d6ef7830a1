"""`mission schedule`: add, list, pause, resume and delete recurring goals."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cli.plan_file import read_plan_file
from core.errors import InvalidInput
from core.settings import Settings

if TYPE_CHECKING:
    from services.schedules import RecurringGoal, ScheduleSpec

EXIT_OK = 0


def add_parser(sub: Any) -> None:
    """The `schedule` subcommand and its actions, on the `mission` parser."""
    schedule = sub.add_parser("schedule", help="recurring goals: add, list, pause, resume, delete")
    actions = schedule.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="run a goal on a cron schedule or every N seconds")
    add.add_argument("goal", help="the goal, in words")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='a cron expression, e.g. "0 8 * * 1"')
    when.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="an interval: MISSION_MIN_SCHEDULE_S to a year",
    )
    add.add_argument("--timezone", default="UTC", help="IANA timezone for --cron (default UTC)")
    add.add_argument("--plan", type=Path, help="a plan file (JSON) to run instead of planning")
    add.add_argument("--paused", action="store_true", help="create it paused")
    add.add_argument(
        "--notify", metavar="URL", help="a webhook told (POST, JSON) of each run's end"
    )
    add.add_argument("--budget-tokens", type=int, help="most input + output tokens per run")
    add.add_argument("--budget-usd", type=float, help="most estimated cost per run, USD")
    add.add_argument("--budget-seconds", type=float, help="most wall-clock seconds per run")
    add.add_argument("--budget-subtasks", type=int, help="most subtasks in a run's plan")
    actions.add_parser("list", help="list recurring goals")
    for name, what in (("pause", "pause"), ("resume", "resume"), ("delete", "delete")):
        action = actions.add_parser(name, help=f"{what} a recurring goal")
        action.add_argument("id", help="the recurring goal's id (from `mission schedule list`)")


def _schedule_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a recurring goal id (a UUID)") from None


def _budget(args: argparse.Namespace) -> dict[str, Any] | None:
    budget = {
        "max_tokens": args.budget_tokens,
        "max_cost_usd": args.budget_usd,
        "max_seconds": args.budget_seconds,
        "max_subtasks": args.budget_subtasks,
    }
    return {k: v for k, v in budget.items() if v is not None} or None


def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    from core.local_server import connect

    # Validate before starting anything: a bad cron needs no server.
    spec = None
    if args.action == "add":
        from services.schedules import build_spec

        spec = build_spec(
            args.goal,
            cron=args.cron,
            interval_s=args.every,
            timezone=args.timezone,
            plan=read_plan_file(args.plan) if args.plan is not None else None,
            budget=_budget(args),
            active=not args.paused,
            max_goal_chars=settings.max_goal_chars,
            limits=settings.plan_limits(),
            min_period_s=settings.min_schedule_s,
            notify=args.notify,
            notify_allow=settings.notify_allow,
        )
    schedule_id = _schedule_id(args.id) if args.action in ("pause", "resume", "delete") else None
    server = connect(settings.home, settings.prefect_port, settings.prefect_api_url)
    try:
        return asyncio.run(_act(args.action, settings, spec, schedule_id))
    finally:
        if server is not None:
            server.stop()


async def _act(
    action: str, settings: Settings, spec: ScheduleSpec | None, schedule_id: UUID | None
) -> int:
    # Prefect is imported only now, after `connect` has pointed it at the server.
    from prefect.client.orchestration import get_client

    from services import schedules

    deployment = settings.deployment
    async with get_client() as client:
        if action == "add":
            assert spec is not None
            page_url = f"http://127.0.0.1:{settings.port}"
            created = await schedules.create_schedule(
                client, deployment, spec, settings.max_schedules, page_url
            )
            print(_line(created))
        elif action == "list":
            for recurring in await schedules.list_schedules(client, deployment):
                print(_line(recurring))
        elif action == "delete":
            assert schedule_id is not None
            await schedules.delete_schedule(client, deployment, schedule_id)
            print(f"deleted {schedule_id}")
        else:
            assert schedule_id is not None
            active = action == "resume"
            print(_line(await schedules.set_active(client, deployment, schedule_id, active)))
    return EXIT_OK


def _line(recurring: RecurringGoal) -> str:
    """One recurring goal on one line: id, state, when, next run, goal."""
    when = (
        f"cron {recurring.cron!r} {recurring.timezone}"
        if recurring.cron
        else f"every {recurring.interval_s} s"
    )
    upcoming = recurring.next_runs[0].isoformat(timespec="minutes") if recurring.next_runs else "-"
    state = "active" if recurring.active else "paused"
    notify = f"  notify {recurring.notify}" if recurring.notify else ""
    return f"{recurring.id}  {state}  {when}  next {upcoming}  {recurring.goal}{notify}"
