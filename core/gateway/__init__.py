"""The model gateway: route a tier to a model, and make one model call the one way every
caller makes it (budget check, call, charge, shape check, record).

Providers are adapters with one interface (`types.Provider`): `anthropic_provider` (the only
module that imports `anthropic`) and `simulated`; `circuit` wraps either in a per-tier
circuit breaker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from core.artifacts import AttemptRecord, AttemptStatus
from core.citations import CitationReport
from core.errors import ConfigurationError, ModelError, ProviderError
from core.gateway.circuit import CircuitBreaker, CircuitProvider
from core.gateway.types import Ledger, ModelRequest, ModelSpec, Provider, Reply
from core.pricing import Usage
from core.settings import Settings, get_settings
from core.sources import Hit
from core.stop import NEVER, GoalStopped, Stop


def route(
    tier: str, temperature: float | None = None, settings: Settings | None = None
) -> ModelSpec:
    """The model, temperature, token cap and time limit a tier is served with."""
    settings = settings or get_settings()
    try:
        spec = settings.tiers[tier]
    except KeyError:
        raise ConfigurationError(f"unknown tier {tier!r}") from None
    return ModelSpec(
        tier=tier,
        model=spec.model,
        temperature=spec.temperature if temperature is None else temperature,
        max_tokens=spec.max_tokens,
        timeout_s=spec.timeout_s or settings.model_timeout_s,
    )


_providers: dict[tuple[str, int, int], Provider] = {}
_providers_lock = threading.Lock()  # subtasks are threads: the first ones ask at once


def get_provider(settings: Settings | None = None) -> Provider:
    """The provider the settings choose, behind a per-tier circuit breaker; one instance (one
    HTTP pool, one breaker) per process (a forked goal run builds its own)."""
    settings = settings or get_settings()
    key = (settings.resolved_provider, id(settings), os.getpid())
    with _providers_lock:
        if key not in _providers:
            _providers[key] = _new_provider(settings)
        return _providers[key]


def _new_provider(settings: Settings) -> Provider:
    inner: Provider
    # Imported here, not above: a simulated run never pays for importing the SDK.
    if settings.resolved_provider == "anthropic":
        from core.gateway.anthropic_provider import AnthropicProvider

        inner = AnthropicProvider(settings)
    else:
        from core.gateway.simulated import SimulatedProvider

        inner = SimulatedProvider(settings)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
    return CircuitProvider(inner, breaker)


def attempt(
    step: str,
    tier: str,
    status: AttemptStatus,
    model: str | None = None,
    usage: Usage | None = None,
    learned: str | None = None,
    error: str | None = None,
) -> AttemptRecord:
    """The record of one call attempt (or of a subtask that made none)."""
    u = usage or Usage()
    return AttemptRecord(
        step=step,
        provider=get_settings().resolved_provider,
        tier=tier,
        status=status,
        model=model,
        learned=learned,
        error=error,
        **u.model_dump(),
        at=datetime.now(UTC),
    )


def call_model(
    step: str,
    tier: str,
    request: ModelRequest,
    ledger: Ledger,
    temperature: float | None = None,
    shape: type[BaseModel] | None = None,
    review: Callable[[Reply], CitationReport | None] | None = None,
) -> Reply:
    """Call the model serving `tier`, charged to and recorded in `ledger`; a rejected reply's
    cost is charged too. With `shape`, the tool input must validate against it or the reply
    counts as rejected (ModelError). `review` checks an accepted reply's citations; what it
    finds is recorded with the attempt."""
    spec = route(tier, temperature)
    ledger.check()
    try:
        reply = get_provider().complete(spec, request, ledger.stop)
    except ModelError as exc:
        usage = Usage.model_validate(exc.usage) if exc.usage else None
        if usage is not None:
            ledger.charge(usage)
        ledger.record(attempt(step, tier, "rejected", spec.model, usage, error=exc.message))
        raise
    except ProviderError as exc:
        ledger.record(attempt(step, tier, "error", spec.model, error=exc.message))
        raise
    except GoalStopped as exc:  # aborted in flight: whatever it cost is unknown
        ledger.record(attempt(step, tier, "stopped", spec.model, error=exc.message))
        raise
    ledger.charge(reply.usage)
    if shape is not None:
        try:
            shape.model_validate(reply.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "input"
            message = f"{step}: {reply.model} answered in the wrong shape ({where}: {first['msg']})"
            ledger.record(attempt(step, tier, "rejected", spec.model, reply.usage, error=message))
            raise ModelError(message, reply.usage.model_dump()) from None
    learned = reply.data.get("learned")
    record = attempt(
        step,
        tier,
        "ok",
        reply.model,
        reply.usage,
        learned=learned if isinstance(learned, str) else None,
    )
    record.citations = review(reply) if review is not None else None
    ledger.record(record)
    return reply


def web_search(query: str, limit: int, stop: Stop = NEVER) -> list[Hit]:
    """Anthropic's server-side web search (`MISSION_SEARCH=anthropic`), run by the search
    tier's model: the hits it found, untrusted."""
    settings = get_settings()
    if settings.resolved_provider != "anthropic":
        raise ConfigurationError("MISSION_SEARCH=anthropic needs the anthropic provider")
    from core.gateway.anthropic_provider import AnthropicProvider

    provider = get_provider(settings)
    inner = provider.inner if isinstance(provider, CircuitProvider) else provider
    assert isinstance(inner, AnthropicProvider)
    return inner.web_search(route(settings.search_tier), query, limit, stop)


__all__ = ["ModelRequest", "ModelSpec", "Provider", "Reply", "call_model", "get_provider", "route"]
