"""The simulated provider: deterministic, labelled answers with per-tier latency.

It exists for demos, load tests and benchmarks when no API key is set; every reply and every
progress document says `simulated`. It is never a fallback for a failing real provider.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from core.errors import ProviderError
from core.gateway.types import ModelRequest, ModelSpec, Reply
from core.pricing import priced
from core.settings import Settings
from core.stop import NEVER, Stop

_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


class SimulatedProvider:
    name = "simulated"

    def __init__(self, settings: Settings) -> None:
        self._latency_ms = settings.simulated_latency_ms

    def complete(self, spec: ModelSpec, request: ModelRequest, stop: Stop = NEVER) -> Reply:
        delay = self._latency_ms.get(spec.tier, self._latency_ms.get("default", 0)) / 1000
        data = _simulated_data(spec, request)
        output = data.get("output")
        # The simulated "request" is this wait (a stop aborts it at once); a streamed one
        # writes its output's words over it, in several chunks.
        if request.on_text is not None and isinstance(output, str):
            for i, part in enumerate(_chunks(output, STREAM_CHUNKS), start=1):
                if stop.wait(min(delay, spec.timeout_s) / STREAM_CHUNKS):
                    stop.check()
                if i * delay / STREAM_CHUNKS > spec.timeout_s:
                    break
                request.on_text(part)
        elif stop.wait(min(delay, spec.timeout_s)):
            stop.check()
        if delay > spec.timeout_s:
            raise ProviderError(f"{request.label}: {spec.model} did not answer in time", True)
        out_chars = len(str(data))
        usage = priced(spec.model, (len(request.system) + len(request.prompt)) // 4, out_chars // 4)
        return Reply(data=data, model=spec.model, usage=usage)


STREAM_CHUNKS = 8


def _chunks(text: str, count: int) -> list[str]:
    """`count` growing prefixes of `text`, each ending after a word; the last is all of it."""
    cuts = [len(text) * i // count for i in range(1, count)]
    ends = [text.find(" ", cut) + 1 or len(text) for cut in cuts]
    return [text[:end] for end in ends] + [text]


def _simulated_data(spec: ModelSpec, request: ModelRequest) -> dict[str, Any]:
    if request.tool.name == "submit_plan":
        goal = _goal_of(request.prompt)
        return research_plan(goal) if _can_search(request) else simulated_plan(goal)
    if request.tool.name == "submit_revision":
        return simulated_revision(request.prompt)
    data = _simulated_report(spec, request)
    if "missing" in request.tool.schema.get("properties", {}):
        data |= _simulated_missing(_goal_of(request.prompt))
    return data


def _goal_of(prompt: str) -> str:
    match = re.search(r"<goal>\n?(.*?)\n?</goal>", prompt, re.S)
    return match.group(1).strip() if match else prompt.strip()


def _can_search(request: ModelRequest) -> bool:
    """Whether the planner was offered the `search` kind (a retriever is configured)."""
    subtask = request.tool.schema.get("properties", {}).get("subtasks", {}).get("items", {})
    return "search" in subtask.get("properties", {}).get("kind", {}).get("enum", [])


def _count_in(goal: str) -> int:
    match = re.search(r"\btop\s+(\d+|\w+)", goal, re.I)
    count = 3
    if match:
        word = match.group(1).lower()
        count = int(word) if word.isdigit() else _NUMBER_WORDS.get(word, 3)
    return max(2, min(count, 8))


def research_plan(goal: str) -> dict[str, Any]:
    """With search: search the goal, read the top hits side by side, write it up."""
    count = _count_in(goal)
    reads = [
        {
            "id": f"read_{i}",
            "title": f"Read result {i}",
            "instruction": f"Read the page and note what it says that bears on: {goal}",
            "kind": "browse",
            "tier": "vision",
            "depends_on": ["search"],
        }
        for i in range(1, count + 1)
    ]
    return {
        "goal": goal,
        "subtasks": [
            {
                "id": "search",
                "title": "Search",
                "instruction": goal[:300],
                "kind": "search",
                "tier": "fast",
            },
            *reads,
            {
                "id": "summary",
                "title": "Write the summary",
                "instruction": "Write a concise, cited summary for a busy reader.",
                "kind": "write",
                "tier": "writer",
                "temperature": 0.2,
                "depends_on": [r["id"] for r in reads],
            },
        ],
    }


def simulated_plan(goal: str) -> dict[str, Any]:
    """A fixed-shape plan: scope, N parallel research subtasks, compare, analyse, write."""
    count = _count_in(goal)
    research = [
        {
            "id": f"research_{i}",
            "title": f"Research candidate {i}",
            "instruction": f"Using the scope, research candidate {i} for: {goal}",
            "kind": "extract",
            "tier": "fast",
            "depends_on": ["scope"],
        }
        for i in range(1, count + 1)
    ]
    return {
        "goal": goal,
        "subtasks": [
            {
                "id": "scope",
                "title": "Define the scope",
                "instruction": f"Name the space and the {count} candidates to study for: {goal}",
                "kind": "extract",
                "tier": "fast",
                "temperature": 0.2,
            },
            *research,
            {
                "id": "compare",
                "title": "Compare the candidates",
                "instruction": "Build a comparison table of the candidates' findings.",
                "kind": "structure",
                "tier": "structured",
                "temperature": 0.0,
                "depends_on": [r["id"] for r in research],
            },
            {
                "id": "analyse",
                "title": "Analyse strengths and gaps",
                "instruction": "From the comparison, analyse strengths, weaknesses and gaps.",
                "kind": "synthesize",
                "tier": "deep",
                "depends_on": ["compare"],
            },
            {
                "id": "summary",
                "title": "Write the summary",
                "instruction": "Write a concise summary for a busy reader.",
                "kind": "write",
                "tier": "writer",
                "temperature": 0.2,
                "depends_on": ["compare", "analyse"],
            },
        ],
    }


_FAILED = re.compile(r'<failed id="([^"]+)" depends_on="([^"]*)">')
_COMPLETED = re.compile(r'<completed id="([^"]+)">')
_REVISION = re.compile(r"Revision number: (\d+)")


def simulated_revision(prompt: str) -> dict[str, Any]:
    """The simulated replanner: for each failed subtask, one alternative `extract` subtask
    with the same dependencies that replaces it; when nothing failed (the joiner asked for
    more), one `extract` subtask that digs deeper from what completed last."""
    number = (_REVISION.search(prompt) or ["", "1"])[1]
    failed = _FAILED.findall(prompt)
    subtasks = [
        {
            "id": f"{sid[:34]}_alt{number}",
            "title": f"Another way to do {sid}",
            "instruction": f"Do what `{sid}` was for, another way, from what is known.",
            "kind": "extract",
            "tier": "fast",
            "depends_on": [d for d in deps.split(",") if d],
            "replaces": sid,
        }
        for sid, deps in failed
    ]
    if not failed:
        done = _COMPLETED.findall(prompt)
        subtasks.append(
            {
                "id": f"deeper_{number}",
                "title": "Dig deeper",
                "instruction": "Find what the results so far leave open, in more depth.",
                "kind": "extract",
                "tier": "fast",
                "depends_on": done[-1:],
            }
        )
    return {"subtasks": subtasks}


def _simulated_missing(goal: str) -> dict[str, Any]:
    """The simulated joiner asks for more only when the goal asks to go deeper."""
    if re.search(r"\bdeeper\b", goal, re.I):
        return {"missing": "the goal asks to go deeper than these results do"}
    return {}


def _simulated_report(spec: ModelSpec, request: ModelRequest) -> dict[str, Any]:
    """An answer that shows what the call was given: its instruction and its inputs."""
    digest = hashlib.sha256((request.system + request.prompt).encode()).hexdigest()[:8]
    who = request.label or spec.tier
    instruction = request.prompt.rpartition("Instruction:\n")[2].strip() or "(none)"
    inputs = re.findall(r'<(?:dependency id|result subtask)="([^"]+)"', request.prompt)
    output = (
        f"**Simulated answer** by {spec.model} ({spec.tier} tier) for `{who}`.\n\n"
        f"- Instruction: {instruction[:300]}\n"
        f"- Built on: {', '.join(f'`{i}`' for i in inputs) or 'the goal alone'}\n"
        f"- Fingerprint: `{digest}`\n"
    )
    cited = _citations(request.prompt)
    if cited:
        output += "\nFrom the sources:\n" + "\n".join(f"- {line}" for line in cited) + "\n"
    return {"output": output, "learned": f"{who}: simulated finding {digest}"}


_SOURCE_TEXT = re.compile(
    r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>'
    r'|<page [^>]*source="(\d+)"[^>]*>\n<text>\n(.*?)\n</text>',
    re.S,
)
_SENTENCE = re.compile(r"[^.!?\n\"“”]{20,200}[.!?]")  # quotable whole: no quote marks


def _citations(prompt: str) -> list[str]:
    """A claim per source given, each quoting that source's first full sentence: citations
    the checker can verify (a real model is asked to do the same)."""
    lines = []
    for match in _SOURCE_TEXT.finditer(prompt):
        number = match.group(1) or match.group(3)
        text = match.group(2) if match.group(1) else match.group(4)
        sentence = _SENTENCE.search(text or "")
        if sentence:
            words = " ".join(sentence.group().split())
            lines.append(f'the source says "{words}" [{number}]')
    return lines[:8]
