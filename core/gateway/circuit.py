"""A per-tier circuit breaker around the model provider: a tier whose calls keep failing is
left alone for a while instead of being hammered by every subtask that routes to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import ModelError, ProviderError
from core.gateway.types import ModelRequest, ModelSpec, Provider, Reply
from core.stop import NEVER, Stop


@dataclass
class _TierCircuit:
    failures: int = 0  # consecutive transient failures
    open_until: float = 0.0  # while now < open_until, calls fail without a request
    trial: bool = False  # one call is testing the tier after the cool-down (half-open)
    last_error: str = ""


class CircuitBreaker:
    """Per tier: after `threshold` consecutive transient provider failures (each already
    retried by the SDK) the circuit opens and calls fail at once for `cooldown_s`; then one
    trial call is let through, and its outcome closes the circuit or opens it again. A
    model's misbehaviour (a truncated or wrong-shaped reply) is not the provider failing, so
    it neither opens nor keeps open a circuit. One breaker per process (a goal run is one
    process)."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tiers: dict[str, _TierCircuit] = {}

    def before(self, tier: str) -> None:
        """Raise ProviderError instead of letting a call to an open tier through."""
        with self._lock:
            circuit = self._tiers.setdefault(tier, _TierCircuit())
            if circuit.failures < self.threshold:
                return
            left = circuit.open_until - self._clock()
            if left <= 0 and not circuit.trial:
                circuit.trial = True  # this call tests the tier; the others keep waiting
                return
        wait = f"for {left:.0f} s more" if left > 0 else "until a trial call answers"
        raise ProviderError(
            f"tier {tier} is paused after {circuit.failures} failed calls in a row "
            f"(last: {circuit.last_error}); no call is made to it {wait}"
        )

    def succeeded(self, tier: str) -> None:
        with self._lock:
            self._tiers[tier] = _TierCircuit()

    def failed(self, tier: str, error: str) -> None:
        with self._lock:
            circuit = self._tiers.setdefault(tier, _TierCircuit())
            circuit.failures += 1
            circuit.last_error = error
            circuit.trial = False
            if circuit.failures >= self.threshold:
                circuit.open_until = self._clock() + self.cooldown_s


class CircuitProvider:
    """The configured provider behind a CircuitBreaker (same interface)."""

    def __init__(self, inner: Provider, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.name = inner.name

    def complete(self, spec: ModelSpec, request: ModelRequest, stop: Stop = NEVER) -> Reply:
        self.breaker.before(spec.tier)
        try:
            reply = self.inner.complete(spec, request, stop)
        except ProviderError as exc:
            if exc.transient:
                self.breaker.failed(spec.tier, exc.message)
            else:
                self.breaker.succeeded(spec.tier)  # it answered: the tier is up
            raise
        except ModelError:
            self.breaker.succeeded(spec.tier)
            raise
        self.breaker.succeeded(spec.tier)
        return reply
