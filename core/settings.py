"""Every setting of Mission Control, read once from `MISSION_*` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError
from core.plan import PlanLimits
from core.web_guard import Allowlist


class TierSpec(BaseModel):
    """How one tier is served: which model, how hot, how long, how many at once."""

    model: str
    temperature: float = Field(ge=0.0, le=1.0)
    max_tokens: int = Field(gt=0, le=64_000)
    concurrency: int | None = Field(default=None, gt=0)


DEFAULT_TIERS: dict[str, TierSpec] = {
    "vision": TierSpec(model="claude-sonnet-5-5", temperature=0.2, max_tokens=2048),
    "fast": TierSpec(model="claude-haiku-5-5", temperature=0.3, max_tokens=1024),
    "structured": TierSpec(model="claude-sonnet-5-5", temperature=0.0, max_tokens=2048),
    "deep": TierSpec(model="claude-opus-5-5", temperature=0.5, max_tokens=4096),
    "writer": TierSpec(model="claude-sonnet-5-5", temperature=0.2, max_tokens=4096),
}


def parse_pairs(text: str, what: str) -> dict[str, int]:
    """Parse `vision=600,fast=100` into {"vision": 600, "fast": 100}."""
    pairs: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise ValueError(f"{what}: expected name=number pairs, got {part!r}")
        pairs[name.strip()] = int(value)
    return pairs


class Settings(BaseSettings):
    """Mission Control settings. Every field is documented in README.md."""

    model_config = SettingsConfigDict(env_prefix="MISSION_", extra="ignore")

    provider: Literal["anthropic", "simulated"] | None = None
    simulated_latency_ms: str = "default=200"
    tiers: dict[str, TierSpec] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    tier_limits: str = ""
    tier_gate: Literal["local", "prefect"] = "local"
    send_temperature: Literal["auto", "always", "never"] = "auto"
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    planner_tier: str = "deep"
    join_tier: str = "deep"

    max_goal_chars: int = Field(default=4000, gt=0)
    max_subtasks: int = Field(default=60, gt=0)
    max_depth: int = Field(default=12, gt=0)
    max_instruction_chars: int = Field(default=4000, gt=0)

    model_timeout_s: float = Field(default=120.0, gt=0)
    subtask_retries: int = Field(default=1, ge=0, le=5)
    sdk_max_retries: int = Field(default=2, ge=0, le=10)
    # A tier whose calls fail this many times in a row (after the SDK's retries) is left
    # alone for breaker_cooldown_s: calls to it fail at once (core/circuit.py).
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)

    home: Path = Path.home() / ".mission"
    prefect_api_url: str | None = None
    prefect_port: int = Field(default=4200, gt=0, lt=65536)
    database_url: SecretStr | None = None

    # The service (`mission up`): where it listens and who may use it.
    deployment: str = "compound-goal/compound-goal"
    api_only: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    password: SecretStr | None = None
    password_hash: SecretStr | None = None
    api_tokens: SecretStr = SecretStr("")
    local_demo: bool = False
    session_secret: SecretStr | None = None
    session_idle_s: int = Field(default=30 * 60, gt=0)
    session_max_s: int = Field(default=12 * 3600, gt=0)
    login_max_failures: int = Field(default=5, gt=0)
    login_window_s: int = Field(default=300, gt=0)

    # Limits on what one client can ask of the service.
    max_body_bytes: int = Field(default=512 * 1024, gt=0)
    max_active_runs: int = Field(default=50, gt=0)
    # Goal runs the runner executes at once (each is a process); the rest wait their turn.
    runner_limit: int = Field(default_factory=lambda: 4 * (os.cpu_count() or 1), gt=0)
    approval_timeout_s: int = Field(default=24 * 3600, gt=0)
    events_heartbeat_s: float = Field(default=15.0, gt=0)
    runner_poll_s: int = Field(default=1, gt=0)
    heartbeat_s: int = Field(default=30, ge=30)  # Prefect refuses less
    zombie_after_s: int = Field(default=90, gt=0)

    # Browse subtasks (tasks/browse.py): the browser, what the SSRF guard lets through, limits.
    chromium_path: Path = Path("/usr/bin/chromium")
    browse_allow: str = ""  # hosts / CIDRs, optionally with a port; see core.web_guard.Allowlist
    browse_nav_timeout_s: float = Field(default=15.0, gt=0)
    browse_total_s: float = Field(default=45.0, gt=0)
    browse_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    browse_max_pages: int = Field(default=10, gt=0)  # top-level documents: redirects, popups count
    browse_max_screenshots: int = Field(default=1, gt=0, le=20)
    browse_text_chars: int = Field(default=20_000, gt=0)
    browse_max_open: int = Field(default=4, gt=0)  # pages open at once in one worker process

    @field_validator("simulated_latency_ms", "tier_limits")
    @classmethod
    def _pairs_parse(cls, value: str) -> str:
        parse_pairs(value, "setting")
        return value

    @field_validator("browse_allow")
    @classmethod
    def _allowlist_parses(cls, value: str) -> str:
        Allowlist.parse(value)
        return value

    @model_validator(mode="after")
    def _zombie_after_a_missed_heartbeat(self) -> Settings:
        if self.zombie_after_s <= self.heartbeat_s:
            raise ValueError(
                f"MISSION_ZOMBIE_AFTER_S ({self.zombie_after_s}) must exceed "
                f"MISSION_HEARTBEAT_S ({self.heartbeat_s}), or live goal runs are marked Crashed"
            )
        return self

    @model_validator(mode="after")
    def _tiers_are_known(self) -> Settings:
        for name in (self.planner_tier, self.join_tier, *self.limits):
            if name not in self.tiers:
                raise ValueError(f"unknown tier {name!r}; known tiers: {', '.join(self.tiers)}")
        return self

    @property
    def limits(self) -> dict[str, int]:
        """Per-tier concurrency: `MISSION_TIER_LIMITS` wins over the tiers' own field."""
        limits = {n: t.concurrency for n, t in self.tiers.items() if t.concurrency}
        limits.update(parse_pairs(self.tier_limits, "MISSION_TIER_LIMITS"))
        return limits

    @property
    def tokens(self) -> list[str]:
        """The API bearer tokens (`MISSION_API_TOKENS`, comma-separated)."""
        return [t.strip() for t in self.api_tokens.get_secret_value().split(",") if t.strip()]

    @property
    def browse_allowlist(self) -> Allowlist:
        """Where browse subtasks may go despite the SSRF guard (`MISSION_BROWSE_ALLOW`)."""
        return Allowlist.parse(self.browse_allow)

    @property
    def latency_ms(self) -> dict[str, int]:
        return parse_pairs(self.simulated_latency_ms, "MISSION_SIMULATED_LATENCY_MS")

    def plan_limits(self) -> PlanLimits:
        return PlanLimits(
            tiers=frozenset(self.tiers),
            max_subtasks=self.max_subtasks,
            max_depth=self.max_depth,
            max_instruction_chars=self.max_instruction_chars,
            max_goal_chars=self.max_goal_chars,
        )

    @property
    def sends_temperature(self) -> bool:
        """`auto`: only to Anthropic-compatible endpoints, not to api.anthropic.com."""
        if self.send_temperature != "auto":
            return self.send_temperature == "always"
        base = os.environ.get("ANTHROPIC_BASE_URL", "")
        return bool(base) and "api.anthropic.com" not in base

    @property
    def resolved_provider(self) -> Literal["anthropic", "simulated"]:
        """Anthropic when a key is set; simulated (and labelled so) otherwise."""
        if self.provider is not None:
            return self.provider
        return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "simulated"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(f"invalid MISSION_* setting: {exc}") from exc
