"""The endpoint check behind `mission doctor` and the start of `mission up`: can the configured
endpoint serve each tier? Reachable, the model name accepted, tools taken, a forced tool call
answered, JSON-schema output answered, images taken by the vision tier.

Every probe is one small real model call, made once per distinct model and never retried,
through the same adapter as every other call (so it sees what a goal run would see).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from core.errors import ModelError, ProviderError
from core.gateway.types import ModelRequest, ModelSpec, Provider, Tool
from core.settings import Settings

Outcome = bool | None  # None: not probed (an earlier check failed, or not asked of this tier)
Mode = Literal["tools", "json_schema"]

# A 1x1 PNG: enough for an endpoint to show whether it takes image input at all.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PROBE_TOOL = Tool(
    name="report_result",
    description="Report the result of the check.",
    schema={
        "type": "object",
        "properties": {"output": {"type": "string"}, "learned": {"type": "string"}},
        "required": ["output", "learned"],
    },
)
PROBE_MAX_TOKENS = 256

# What each failed check means, and what to do about it.
MEANING = {
    "reachable": "no answer from the endpoint: is the server up, and ANTHROPIC_BASE_URL right?",
    "model": "the endpoint refused the model name: set the tier's model in MISSION_TIERS to "
    "one it serves",
    "tools": "the endpoint refused a request with a tool: on llama-server, start it with "
    "--jinja and a chat template that can render tools",
    "forced": "a forced tool call did not come back as one (prose, or out of tokens): with "
    "json_schema working, set MISSION_STRUCTURED=json_schema",
    "json_schema": "no JSON-schema output from /v1/chat/completions: keep MISSION_STRUCTURED="
    "tools (this endpoint cannot constrain output that way)",
    "images": "the vision tier's model takes no image input: serve a vision model (on "
    "llama-server, with its --mmproj) or route the vision tier to one",
}


@dataclass
class TierCheck:
    tier: str
    model: str
    reachable: Outcome = None
    model_accepted: Outcome = None
    tools: Outcome = None
    forced: Outcome = None
    json_schema: Outcome = None
    images: Outcome = None  # probed for the vision tier only
    problems: dict[str, str] = field(default_factory=dict)  # check -> what the server said

    def usable(self, mode: Mode) -> bool:
        structured = self.forced if mode == "tools" else self.json_schema
        return bool(self.reachable and self.model_accepted and structured) and (
            self.images is not False
        )


@dataclass
class EndpointReport:
    provider: str
    endpoint: str
    mode: Mode
    tiers: list[TierCheck]

    @property
    def usable(self) -> bool:
        return all(t.usable(self.mode) for t in self.tiers)

    @property
    def json_schema_works(self) -> bool:
        return any(t.json_schema for t in self.tiers)


@dataclass
class _Probe:
    """The answer to one probe request: reached, accepted, answered in shape."""

    reached: bool
    accepted: bool
    answered: bool
    error: str = ""
    model_refused: bool = False


def _probe(provider: Provider, spec: ModelSpec, images: tuple[bytes, ...] = ()) -> _Probe:
    request = ModelRequest(
        system="You check that a model endpoint works. Answer briefly.",
        prompt="Report the result: output 'ok', learned 'the endpoint answers'.",
        tool=PROBE_TOOL,
        images=images,
        label="check",
    )
    try:
        reply = provider.complete(spec, request)
    except ProviderError as exc:
        if "did not answer in time" in exc.message:  # it took the request; it is slow
            return _Probe(True, True, False, exc.message)
        if exc.transient:
            return _Probe(False, False, False, exc.message)
        refused = "model" in exc.message.lower() or "(404)" in exc.message
        return _Probe(True, False, False, exc.message, model_refused=refused)
    except ModelError as exc:
        return _Probe(True, True, False, exc.message)
    shaped = all(isinstance(reply.data.get(k), str) for k in ("output", "learned"))
    return _Probe(True, True, shaped, "" if shaped else f"answered {sorted(reply.data)}")


def check_model(tier: str, spec: ModelSpec, make_provider: Callable[[Mode], Provider]) -> TierCheck:
    """The checks of one tier's model, in order; a check after a failed one is not probed."""
    check = TierCheck(tier=tier, model=spec.model)
    forced = _probe(make_provider("tools"), spec)
    check.reachable = forced.reached
    if not forced.reached:
        check.problems["reachable"] = forced.error
        return check
    check.model_accepted = not forced.model_refused
    if forced.model_refused:
        check.problems["model"] = forced.error
        return check
    check.tools = forced.accepted
    check.forced = forced.answered
    if not forced.answered:
        check.problems["tools" if not forced.accepted else "forced"] = forced.error
    shaped = _probe(make_provider("json_schema"), spec)
    check.json_schema = shaped.answered
    if not shaped.answered:
        check.problems["json_schema"] = shaped.error
    return check


def check_images(check: TierCheck, spec: ModelSpec, provider: Provider) -> None:
    """Whether the tier's model takes an image. Only a refusal says no: a reply in the wrong
    shape still took the image."""
    if not (check.reachable and check.model_accepted):
        return
    seen = _probe(provider, spec, images=(PIXEL,))
    check.images = seen.accepted or not seen.reached
    if not check.images:
        check.problems["images"] = seen.error


def check_endpoint(settings: Settings, timeout_s: float = 120.0) -> EndpointReport:
    """Probe every tier of `settings` (a model shared by tiers is probed once per check)."""
    from core.gateway import route
    from core.gateway.anthropic_provider import AnthropicProvider

    endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    providers: dict[Mode, Provider] = {}

    def make_provider(mode: Mode) -> Provider:
        if mode not in providers:
            probe_settings = settings.model_copy(update={"structured": mode, "sdk_max_retries": 0})
            providers[mode] = AnthropicProvider(probe_settings)
        return providers[mode]

    done: dict[str, TierCheck] = {}
    tiers: list[TierCheck] = []
    for name in settings.tiers:
        spec = route(name, settings=settings)
        spec = ModelSpec(
            tier=name,
            model=spec.model,
            temperature=spec.temperature,
            max_tokens=min(spec.max_tokens, PROBE_MAX_TOKENS),
            timeout_s=min(spec.timeout_s, timeout_s),
        )
        seen = done.get(spec.model)
        check = _same_as(seen, name) if seen else check_model(name, spec, make_provider)
        done.setdefault(spec.model, check)
        if name == "vision":
            check_images(check, spec, make_provider(settings.structured))
        tiers.append(check)
    return EndpointReport("anthropic", endpoint, settings.structured, tiers)


def _same_as(check: TierCheck, tier: str) -> TierCheck:
    copy = TierCheck(**{**check.__dict__, "tier": tier, "images": None})
    copy.problems = {k: v for k, v in check.problems.items() if k != "images"}
    return copy


def simulated_report(settings: Settings) -> EndpointReport:
    """The simulated provider answers every check by construction: nothing is probed."""
    tiers = [
        TierCheck(
            tier=name,
            model=spec.model,
            reachable=True,
            model_accepted=True,
            tools=True,
            forced=True,
            json_schema=True,
            images=True if name == "vision" else None,
        )
        for name, spec in settings.tiers.items()
    ]
    return EndpointReport("simulated", "none: simulated models", settings.structured, tiers)


def check_configured(settings: Settings, timeout_s: float = 120.0) -> EndpointReport:
    """The endpoint check for whatever provider the settings choose."""
    if settings.resolved_provider == "simulated":
        return simulated_report(settings)
    return check_endpoint(settings, timeout_s)
