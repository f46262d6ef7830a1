"""Errors split by who must act: the caller, the model, the provider, or the operator."""

from __future__ import annotations

from typing import Any


class MissionError(Exception):
    """Base of every error Mission Control raises on purpose; the message is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str]]:  # picklable across Prefect workers
        return (type(self), (self.message,))


class InvalidInput(MissionError):
    """The caller asked for something we refuse: a bad plan, an empty or huge goal."""


class PlanError(InvalidInput):
    """A plan failed validation; the message names the offending subtask."""


class ConfigurationError(MissionError):
    """The operator's settings are wrong (unknown tier, missing key for the real provider)."""


class ModelError(MissionError):
    """The model misbehaved: truncated, refused, or answered in the wrong shape.

    `usage` holds what the rejected reply cost, so failed attempts are still counted.
    """

    def __init__(self, message: str, usage: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.usage = usage

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, Any] | None]]:  # type: ignore[override]
        return (type(self), (self.message, self.usage))


class ProviderError(MissionError):
    """The provider failed over HTTP. `transient` errors are worth another attempt."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[type, tuple[str, bool]]:  # type: ignore[override]
        return (type(self), (self.message, self.transient))


class SkippedError(MissionError):
    """A subtask did not run because a dependency did not complete."""
