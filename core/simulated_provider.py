"""The simulated provider: deterministic, labelled answers with per-tier latency.

It exists for demos, load tests and benchmarks when no API key is set; every reply and every
progress document says `simulated`. It is never a fallback for a failing real provider.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from core.errors import ProviderError
from core.gateway import ModelRequest, ModelSpec, Reply
from core.pricing import priced
from core.settings import Settings

_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


class SimulatedProvider:
    name = "simulated"

    def __init__(self, settings: Settings) -> None:
        self._latency_ms = settings.latency_ms
        self._timeout_s = settings.model_timeout_s

    def complete(self, spec: ModelSpec, request: ModelRequest) -> Reply:
        delay = self._latency_ms.get(spec.tier, self._latency_ms.get("default", 0)) / 1000
        if delay > self._timeout_s:
            time.sleep(self._timeout_s)
            raise ProviderError(f"{request.label}: {spec.model} did not answer in time", True)
        time.sleep(delay)
        if request.tool.name == "submit_plan":
            data: dict[str, Any] = simulated_plan(_goal_of(request.prompt))
        else:
            data = _simulated_report(spec, request)
        out_chars = len(str(data))
        usage = priced(spec.model, (len(request.system) + len(request.prompt)) // 4, out_chars // 4)
        return Reply(data=data, model=spec.model, usage=usage)


def _goal_of(prompt: str) -> str:
    match = re.search(r"<goal>\n?(.*?)\n?</goal>", prompt, re.S)
    return match.group(1).strip() if match else prompt.strip()


def simulated_plan(goal: str) -> dict[str, Any]:
    """A fixed-shape plan: scope, N parallel research subtasks, compare, analyse, write."""
    match = re.search(r"\btop\s+(\d+|\w+)", goal, re.I)
    count = 3
    if match:
        word = match.group(1).lower()
        count = int(word) if word.isdigit() else _NUMBER_WORDS.get(word, 3)
    count = max(2, min(count, 8))
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
    return {"output": output, "learned": f"{who}: simulated finding {digest}"}
