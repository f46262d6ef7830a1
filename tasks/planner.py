"""The planner: goal -> validated Plan, through a forced `submit_plan` tool call."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from core.errors import PlanError
from core.gateway import call_model
from core.gateway.types import ModelRequest, Tool
from core.plan import KINDS, SLUG_PATTERN, Plan, check_goal, validate_plan
from core.settings import Settings, get_settings
from tasks.ledger import current as current_ledger
from tasks.retry import retry_if_transient

SYSTEM_PROMPT = """You are the planner of Mission Control. You turn one compound goal into a \
plan: a small directed acyclic graph of subtasks that a fleet of language models executes.

How to plan:
- Parallelism first. Every subtask starts the moment the subtasks it depends on finish, so \
depend only on what you truly need. Independent research (one subtask per item, per source, \
per competitor) runs side by side; never chain subtasks that could run at the same time.
- Each subtask does one thing and says in `instruction` exactly what, with enough context to \
be done alone: it sees the goal, its instruction and its dependencies' outputs, nothing else.
- Pick the kind: `browse` looks at a web page (give `url` when you know it), `extract` pulls \
facts from text, `structure` turns findings into tables or JSON, `synthesize` reasons across \
many results, `write` produces polished prose for the reader.
- Pick the cheapest tier that can do it well: `vision` for web pages and screenshots, `fast` \
for extraction and simple lookups, `structured` for tables and schemas, `deep` for analysis \
and judgement across results, `writer` for the final prose.
- Set `temperature` per subtask: 0.0-0.2 for extraction, structure and facts; 0.3-0.5 for \
analysis; up to 0.7 only for brainstorming.
- Ids are short lowercase slugs (letters, digits, `_`), unique in the plan. Aim for 3-15 \
subtasks; a final joiner combines the results, so you need not add one that only concatenates.

Answer only by calling the submit_plan tool."""

WITH_SEARCH = """

Search is available. For research, plan search -> browse -> extract -> answer:
- a `search` subtask (tier `fast`) whose `instruction` is the search query itself;
  it returns numbered hits (title, url, snippet), each a source;
- then one `browse` subtask per page worth reading, depending on the search and
  without `url`: each opens a different one of the hits, best first;
- then `extract`, `structure` or `synthesize` subtasks over what the pages say;
- every subtask cites the sources it was given as [n], quoting the supporting words."""

WITHOUT_SEARCH = """

There is no search: plan only from what the models know and from pages whose `url` you know."""


def system_prompt(settings: Settings) -> str:
    return SYSTEM_PROMPT + (WITH_SEARCH if settings.has_search else WITHOUT_SEARCH)


def plan_tool(settings: Settings) -> Tool:
    subtask: dict[str, Any] = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": SLUG_PATTERN},
            "title": {"type": "string", "maxLength": 200},
            "instruction": {"type": "string", "maxLength": settings.max_instruction_chars},
            "kind": {
                "type": "string",
                "enum": [k for k in KINDS if k in settings.plan_limits().kinds],
            },
            "tier": {"type": "string", "enum": sorted(settings.tiers)},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "depends_on": {
                "type": "array",
                "items": {"type": "string", "pattern": SLUG_PATTERN},
                "maxItems": settings.max_subtasks,
            },
            "url": {"type": "string", "maxLength": 2000},
        },
        "required": ["id", "title", "instruction", "kind", "tier"],
    }
    return Tool(
        name="submit_plan",
        description="Submit the plan for the goal as a list of subtasks with their dependencies.",
        schema={
            "type": "object",
            "properties": {
                "subtasks": {"type": "array", "items": subtask, "maxItems": settings.max_subtasks}
            },
            "required": ["subtasks"],
        },
    )


def make_plan(goal: str, settings: Settings | None = None) -> Plan:
    """Ask the planner model for a plan; on an invalid plan ask once more with the reason."""
    settings = settings or get_settings()
    goal = check_goal(goal, settings.max_goal_chars)
    tool = plan_tool(settings)
    prompt = f"<goal>\n{goal}\n</goal>\n\nPlan this goal."
    reason = ""
    for attempt in (1, 2):
        request = ModelRequest(
            system=system_prompt(settings),
            prompt=prompt,
            tool=tool,
            cache_system=True,
            label="planner",
        )
        reply = call_model("planner", settings.planner_tier, request, current_ledger())
        try:
            return validate_plan({**reply.data, "goal": goal}, settings.plan_limits())
        except PlanError as exc:
            reason = exc.message
            prompt = (
                f"<goal>\n{goal}\n</goal>\n\nYour previous plan was rejected: {reason}\n"
                "Submit a corrected plan."
            )
            if attempt == 2:
                break
    raise PlanError(f"the planner's plan was invalid twice; last reason: {reason}")


def plan_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """One plan per goal run: a retry of the run takes the plan it made before, so its
    finished subtasks (cached under the same plan) are reused instead of planned anew."""
    digest = hashlib.sha256(str(parameters["goal"]).encode()).hexdigest()[:32]
    return f"plan-{context.task_run.flow_run_id}-{digest}"


@task(
    name="plan goal",
    task_run_name="plan goal",
    retries=1,
    retry_condition_fn=retry_if_transient,
    persist_result=True,
    cache_key_fn=plan_cache_key,
)
def plan_goal(goal: str) -> Plan:
    """The planner as a Prefect task: retried once on transient provider errors."""
    return make_plan(goal)
