"""The plan: a goal's DAG of subtasks, and the one validator every plan passes through."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput, PlanError

KINDS = ("search", "browse", "extract", "structure", "synthesize", "write")
# Kinds every installation has; `search` needs a retriever (MISSION_SEARCH_URL, ...).
BASE_KINDS = frozenset(KINDS) - {"search"}
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
# Control characters (but tab, newline, carriage return), DEL, C1 controls and unpaired
# surrogates: none belongs in text a person or a model writes, terminals act on some, and
# PostgreSQL refuses NUL and unpaired surrogates in text.
_NOT_URL = re.compile(r"[\s\"'<>`{}|\\^\x00-\x1f\x7f“”‘’«»]")
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """What makes `text` unfit to store or show (in words), or None."""
    found = _NOT_TEXT.search(text)
    if found is None:
        return None
    code = ord(found.group())
    what = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{what} (U+{code:04X}) at character {found.start() + 1}"


class Subtask(BaseModel):
    """One node of the plan."""

    # NaN would slip past the temperature's bounds and reach the model; refused by name.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(pattern=SLUG_PATTERN, description="short slug, unique in the plan")
    title: str = Field(min_length=1, max_length=200)
    instruction: str = Field(description="what the model should do, in full")
    kind: str = Field(description="search | browse | extract | structure | synthesize | write")
    tier: str = Field(description="model tier: vision | fast | structured | deep | writer")
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    depends_on: tuple[str, ...] = ()
    url: str | None = Field(default=None, max_length=2000)


class Plan(BaseModel):
    """A validated DAG; build one only through `validate_plan`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    goal: str = Field(min_length=1)
    subtasks: tuple[Subtask, ...] = Field(min_length=1)

    def by_id(self) -> dict[str, Subtask]:
        return {s.id: s for s in self.subtasks}

    def topological_order(self) -> list[Subtask]:
        """Subtasks ordered so that every dependency comes before its dependents."""
        return [self.by_id()[i] for i in _topological_ids(self.subtasks)]

    def descendants(self, subtask_id: str) -> set[str]:
        children: dict[str, list[str]] = {s.id: [] for s in self.subtasks}
        for s in self.subtasks:
            for dep in s.depends_on:
                children[dep].append(s.id)
        seen: set[str] = set()
        stack = list(children[subtask_id])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(children[node])
        return seen

    def sinks(self) -> list[Subtask]:
        """Subtasks nothing depends on: what the join step reads."""
        needed = {d for s in self.subtasks for d in s.depends_on}
        return [s for s in self.subtasks if s.id not in needed]


@dataclass(frozen=True)
class PlanLimits:
    """What a plan may contain; built from settings so operators can widen them."""

    tiers: frozenset[str]
    max_subtasks: int = 60
    max_depth: int = 12
    max_instruction_chars: int = 4000
    max_goal_chars: int = 4000
    kinds: frozenset[str] = BASE_KINDS


def url_problem(url: str) -> str | None:
    """Why `url` is not a web address a browse subtask can open (in words), or None. Read
    with a real URL parser: `https://example.com/a",` (a model's trailing quote) is refused."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if found := _NOT_URL.search(url):
        return f"contains {found.group()!r}, which a URL cannot (spaces, quotes, controls)"
    if url.endswith((",", ";", ".")):
        return "ends with punctuation that belongs to the sentence around it, not the URL"
    return None


def check_goal(goal: str, max_chars: int) -> str:
    """The goal, stripped, or InvalidInput when it is empty, too long or not plain text."""
    text = goal.strip()
    if not text:
        raise InvalidInput("the goal is empty")
    if len(text) > max_chars:
        raise InvalidInput(f"the goal is {len(text)} characters; the limit is {max_chars}")
    if problem := text_problem(text):
        raise InvalidInput(f"the goal contains {problem}")
    return text


def validate_plan(data: Mapping[str, Any] | str | bytes, limits: PlanLimits) -> Plan:
    """Return the Plan for `data`, or raise PlanError naming what is wrong and where."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise PlanError("plan must be a JSON object with 'goal' and 'subtasks'")
    raw = data.get("subtasks")
    if isinstance(raw, list) and len(raw) > limits.max_subtasks:
        raise PlanError(f"plan has {len(raw)} subtasks; the limit is {limits.max_subtasks}")
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_describe(exc, data)) from None

    if len(plan.goal) > limits.max_goal_chars:
        raise PlanError(
            f"goal is {len(plan.goal)} characters; the limit is {limits.max_goal_chars}"
        )
    if problem := text_problem(plan.goal):
        raise PlanError(f"the goal contains {problem}")
    ids: set[str] = set()
    for s in plan.subtasks:
        where = f"subtask {s.id!r}"
        if s.id in ids:
            raise PlanError(f"{where}: duplicate id")
        ids.add(s.id)
        if s.kind == "search" and "search" not in limits.kinds:
            raise PlanError(
                f"{where}: kind 'search' needs a search service, and none is configured "
                "(MISSION_SEARCH_URL, MISSION_SEARCH=anthropic or MISSION_SEARCH_CORPUS)"
            )
        if s.kind not in limits.kinds:
            raise PlanError(
                f"{where}: unknown kind {s.kind!r} (known: {', '.join(sorted(limits.kinds))})"
            )
        if s.tier not in limits.tiers:
            raise PlanError(
                f"{where}: unknown tier {s.tier!r} (known: {', '.join(sorted(limits.tiers))})"
            )
        if not s.instruction.strip():
            raise PlanError(f"{where}: empty instruction")
        for field, text in (("title", s.title), ("instruction", s.instruction)):
            if problem := text_problem(text):
                raise PlanError(f"{where}: the {field} contains {problem}")
        if len(s.instruction) > limits.max_instruction_chars:
            raise PlanError(
                f"{where}: instruction is {len(s.instruction)} characters; "
                f"the limit is {limits.max_instruction_chars}"
            )
        if s.id in s.depends_on:
            raise PlanError(f"{where}: depends on itself")
        if len(set(s.depends_on)) != len(s.depends_on):
            raise PlanError(f"{where}: lists a dependency twice")
        if s.url is not None and (problem := url_problem(s.url)):
            raise PlanError(f"{where}: url {problem}")
    for s in plan.subtasks:
        for dep in s.depends_on:
            if dep not in ids:
                raise PlanError(f"subtask {s.id!r}: depends on unknown subtask {dep!r}")
    cycle = find_cycle(plan.subtasks)
    if cycle:
        chain = " -> ".join([*cycle, cycle[0]])
        raise PlanError(f"subtask {cycle[0]!r}: dependency cycle {chain} (-> means 'depends on')")
    depth = plan_depth(plan.subtasks)
    if depth > limits.max_depth:
        raise PlanError(f"plan is {depth} subtasks deep; the limit is {limits.max_depth}")
    return plan


def find_cycle(subtasks: Iterable[Subtask]) -> list[str]:
    """One dependency cycle as a list of ids, or [] when the graph is a DAG."""
    deps = {s.id: s.depends_on for s in subtasks}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            if i < len(deps[node]):
                stack.append((node, i + 1))
                child = deps[node][i]
                if state.get(child) == 1:
                    return path[path.index(child) :]
                if not state.get(child) and child in deps:
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def plan_depth(subtasks: Iterable[Subtask]) -> int:
    """The number of subtasks on the longest dependency chain (the graph must be acyclic)."""
    by_id = {s.id: s for s in subtasks}
    depth: dict[str, int] = {}
    for i in _topological_ids(by_id.values()):
        depth[i] = 1 + max((depth[d] for d in by_id[i].depends_on), default=0)
    return max(depth.values(), default=0)


def _topological_ids(subtasks: Iterable[Subtask]) -> list[str]:
    items = list(subtasks)
    deps = {s.id: set(s.depends_on) for s in items}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(items):
        ready = [i for i in deps if i not in done and deps[i] <= done]
        if not ready:
            raise PlanError("plan has a cycle")
        order.extend(ready)
        done.update(ready)
    return order


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """One readable line for the first schema error, naming the subtask it is in."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    where = "plan"
    if len(loc) >= 2 and loc[0] == "subtasks" and isinstance(loc[1], int):
        raw = data.get("subtasks") or []
        item = raw[loc[1]] if loc[1] < len(raw) else None
        ident = item.get("id") if isinstance(item, Mapping) else None
        where = f"subtask {ident!r}" if isinstance(ident, str) else f"subtask #{loc[1] + 1}"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc)
    msg = err["msg"]
    if err["type"] == "string_pattern_mismatch" and field == "id":
        msg = "must be a short lowercase slug (letters, digits, '_' or '-', at most 40)"
    return f"{where}: {field + ': ' if field else ''}{msg}"
