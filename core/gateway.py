"""The model gateway: route a tier to a model, and send a request to the configured provider."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from core.errors import ConfigurationError
from core.pricing import Usage
from core.settings import Settings, get_settings


@dataclass(frozen=True)
class ModelSpec:
    """Which model serves a call, and how."""

    tier: str
    model: str
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class Tool:
    """A forced tool: the model must answer by calling it with input matching `schema`."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ModelRequest:
    system: str
    prompt: str
    tool: Tool
    images: tuple[bytes, ...] = ()  # PNG screenshots for the vision tier
    cache_system: bool = False  # mark the fixed system prompt for prompt caching
    label: str = ""  # who is asking (planner, a subtask id): shown in errors


class Reply(BaseModel):
    """What came back: the tool input, the model that produced it, and what it cost."""

    data: dict[str, Any]
    model: str
    usage: Usage


class Provider(Protocol):
    name: str

    def complete(self, spec: ModelSpec, request: ModelRequest) -> Reply: ...


def route(
    tier: str, temperature: float | None = None, settings: Settings | None = None
) -> ModelSpec:
    """The model, temperature and token cap a tier is served with."""
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
    )


_providers: dict[tuple[str, int], Provider] = {}
_providers_lock = threading.Lock()  # subtasks are threads: the first ones ask at once


def get_provider(settings: Settings | None = None) -> Provider:
    """The provider the settings choose, behind a per-tier circuit breaker; one instance (one
    HTTP pool, one breaker) per process."""
    settings = settings or get_settings()
    key = (settings.resolved_provider, id(settings))
    with _providers_lock:
        if key not in _providers:
            _providers[key] = _new_provider(settings)
        return _providers[key]


def _new_provider(settings: Settings) -> Provider:
    from core.circuit import CircuitBreaker, CircuitProvider

    inner: Provider
    if settings.resolved_provider == "anthropic":
        from core.anthropic_provider import AnthropicProvider

        inner = AnthropicProvider(settings)
    else:
        from core.simulated_provider import SimulatedProvider

        inner = SimulatedProvider(settings)
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
    return CircuitProvider(inner, breaker)
