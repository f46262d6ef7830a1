"""`mission doctor`: check that the configured model endpoint can serve every tier, and say
what each failed check means. `mission up` runs the same check as it starts."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from core.endpoint_check import MEANING, EndpointReport, Outcome, check_configured
from core.errors import ConfigurationError
from core.settings import Settings

# The columns of the table: a TierCheck field, its heading, and its key in MEANING.
COLUMNS = (
    ("reachable", "reach", "reachable"),
    ("model_accepted", "name", "model"),
    ("tools", "tools", "tools"),
    ("forced", "forced", "forced"),
    ("json_schema", "json", "json_schema"),
    ("images", "image", "images"),
)
LEGEND = (
    "reach: the endpoint answers; name: it takes the model name; tools: it takes a request "
    "with a tool; forced: a forced tool call comes back as one; json: /v1/chat/completions "
    "answers in a JSON schema; image: the vision tier takes an image"
)
UP_TIMEOUT_S = 30.0  # `mission up` checks briefly; `mission doctor` waits as long as a tier may


def add_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check the model endpoint for every tier")
    doctor.add_argument(
        "--timeout", type=float, default=120.0, help="seconds one probe may take (default 120)"
    )


def _mark(outcome: Outcome) -> str:
    return {True: "[green]ok[/green]", False: "[red]no[/red]", None: "[dim]-[/dim]"}[outcome]


def render(report: EndpointReport, console: Console) -> None:
    """The table of checks per tier, then what each failure means and what the server said."""
    console.print(f"endpoint: {report.endpoint} ({report.provider})")
    console.print(f"structured output: MISSION_STRUCTURED={report.mode}")
    table = Table(show_edge=False, pad_edge=False, box=None)
    for heading in ("tier", "model", *(c[1] for c in COLUMNS), "usable"):
        table.add_column(heading, no_wrap=True, overflow="fold")
    for check in report.tiers:
        marks = [_mark(getattr(check, field)) for field, _, _ in COLUMNS]
        table.add_row(check.tier, check.model, *marks, _mark(check.usable(report.mode)))
    console.print(table)
    console.print(LEGEND, style="dim")
    seen: set[tuple[str, str]] = set()
    for check in report.tiers:
        for key, said in check.problems.items():
            if (key, said) in seen or (key == "forced" and report.mode == "json_schema"):
                continue  # said once; a forced tool call is not what json_schema mode uses
            seen.add((key, said))
            console.print(f"[red]{check.tier}[/red] {key}: {MEANING[key]}", soft_wrap=True)
            console.print(f"  the server said: {said}", markup=False, soft_wrap=True)
    if report.provider == "simulated":
        console.print("simulated provider: no endpoint to probe; every tier usable")
    elif report.usable:
        console.print("[green]every tier usable[/green]")
    elif (
        report.mode == "tools"
        and report.json_schema_works
        and not all(t.forced for t in report.tiers if t.reachable and t.model_accepted)
    ):
        console.print("[yellow]try MISSION_STRUCTURED=json_schema: it works here[/yellow]")


def cmd_doctor(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    report = check_configured(settings, timeout_s=args.timeout)
    render(report, console)
    return 0 if report.usable else 1


def check_before_up(settings: Settings, console: Console, go_on: bool) -> None:
    """The endpoint check at `mission up`'s start: ConfigurationError (refuse to start) when
    a tier cannot work, unless `go_on`."""
    with console.status("checking the model endpoint…"):
        report = check_configured(settings, timeout_s=UP_TIMEOUT_S)
    if report.usable:
        console.print(f"endpoint:   every tier usable ({report.endpoint})")
        return
    render(report, console)
    if not go_on:
        unusable = ", ".join(t.tier for t in report.tiers if not t.usable(report.mode))
        raise ConfigurationError(
            f"the model endpoint cannot serve tier(s) {unusable} (see above); "
            "`mission up --go-on` starts anyway"
        )
    console.print("[yellow]--go-on: starting anyway[/yellow]")
