"""Every setting of Mission Control, read once from `MISSION_*` environment variables."""

from __future__ import annotations

import ipaddress
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, InstanceOf, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigurationError
from core.plan import BASE_KINDS, PlanLimits
from core.web_guard import Allowlist


class TierSpec(BaseModel):
    """How one tier is served: which model, how hot, how long, how many at once."""

    model: str
    temperature: float = Field(ge=0.0, le=1.0)
    max_tokens: int = Field(gt=0, le=64_000)
    concurrency: int | None = Field(default=None, gt=0)
    # One request's time limit; None: MISSION_MODEL_TIMEOUT_S.
    timeout_s: float | None = Field(default=None, gt=0)


DEFAULT_TIERS: dict[str, TierSpec] = {
    "vision": TierSpec(model="claude-sonnet-5-5", temperature=0.2, max_tokens=2048),
    "fast": TierSpec(model="claude-haiku-5-5", temperature=0.3, max_tokens=1024),
    "structured": TierSpec(model="claude-sonnet-5-5", temperature=0.0, max_tokens=2048),
    "deep": TierSpec(model="claude-opus-5-5", temperature=0.5, max_tokens=4096),
    "writer": TierSpec(model="claude-sonnet-5-5", temperature=0.2, max_tokens=4096),
}


def parse_pairs(value: Any) -> Any:
    """`vision=600,fast=100` -> {"vision": 600, "fast": 100}; a dict passes through."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, number = part.partition("=")
        if not sep or not name.strip() or not number.strip().isdigit():
            raise ValueError(f"expected name=number pairs, got {part!r}")
        pairs[name.strip()] = int(number)
    return pairs


def split_commas(value: Any) -> Any:
    """`a, b` (plain or a SecretStr) -> ["a", "b"]; a list passes through."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def parse_allowlist(value: Any) -> Any:
    return Allowlist.parse(value) if isinstance(value, str) else value


def parse_networks(value: Any) -> Any:
    """`10.0.0.5, 172.28.0.0/16` -> the addresses and networks, each checked; a list passes."""
    parts = split_commas(value)
    if not isinstance(parts, list):
        return parts
    for part in parts:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (CIDR)") from None
    return parts


# Settings read from `name=number,...` or `a,b` strings, parsed once into typed fields (the
# environment's value is not JSON, so pydantic-settings must not try to decode it).
Pairs = Annotated[dict[str, int], NoDecode, BeforeValidator(parse_pairs)]
CommaList = Annotated[list[SecretStr], NoDecode, BeforeValidator(split_commas)]
AllowlistSetting = Annotated[InstanceOf[Allowlist], NoDecode, BeforeValidator(parse_allowlist)]
Networks = Annotated[list[str], NoDecode, BeforeValidator(parse_networks)]


class Settings(BaseSettings):
    """Mission Control settings. Every field is documented in README.md."""

    model_config = SettingsConfigDict(env_prefix="MISSION_", extra="ignore")

    provider: Literal["anthropic", "simulated"] | None = None
    simulated_latency_ms: Pairs = Field(default_factory=lambda: {"default": 200})
    tiers: dict[str, TierSpec] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    tier_limits: Pairs = Field(default_factory=dict)
    tier_gate: Literal["local", "prefect"] = "local"
    send_temperature: Literal["auto", "always", "never"] = "auto"
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    planner_tier: str = "deep"
    join_tier: str = "deep"
    # Replanning (core/revision.py): revisions per goal run (0: never), the replanner's tier
    # (default: the planner's) and, for goal runs with approval, how many added subtasks a
    # revision may have before it waits for approval too.
    max_replans: int = Field(default=1, ge=0, le=10)
    replan_tier: str | None = None
    replan_approve_over: int = Field(default=0, ge=0)

    max_goal_chars: int = Field(default=4000, gt=0)
    max_subtasks: int = Field(default=60, gt=0)
    max_depth: int = Field(default=12, gt=0)
    max_instruction_chars: int = Field(default=4000, gt=0)

    # 600 s (the SDK's own default) lets a local server on a small machine finish a reply of
    # max_tokens at ~10 tokens/s; a tier's `timeout_s` overrides it.
    model_timeout_s: float = Field(default=600.0, gt=0)
    # How a model gives structured output (core/gateway/anthropic_provider.py): `tools`, a
    # forced tool call on /v1/messages; `json_schema`, the endpoint's OpenAI-style
    # /v1/chat/completions with a response_format JSON schema that constrains every token
    # (llama.cpp's llama-server, vLLM, Ollama), for endpoints that do not force tools.
    structured: Literal["tools", "json_schema"] = "tools"
    subtask_retries: int = Field(default=1, ge=0, le=5)
    sdk_max_retries: int = Field(default=2, ge=0, le=10)
    # A tier whose calls fail this many times in a row (after the SDK's retries) is left
    # alone for breaker_cooldown_s: calls to it fail at once (core/gateway/circuit.py).
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)

    home: Path = Path.home() / ".mission"
    prefect_api_url: str | None = None
    prefect_port: int = Field(default=4200, gt=0, lt=65536)
    database_url: SecretStr | None = None
    # Streamed output's side channel in the scale-out topology (Redis pub/sub); without it,
    # goal runs send it to the API's socket on this machine (core/stream.py).
    redis_url: SecretStr | None = None
    # Subtasks' text shown while their models write it (requests streamed); off: at the end.
    stream_output: bool = True
    # Where goal runs send it and the API takes it, on one machine (`mission up` sets it for
    # its runner); unset: core.stream.delta_socket(home).
    delta_socket: Path | None = None

    # The service (`mission up`): where it listens and who may use it.
    deployment: str = "compound-goal/compound-goal"
    api_only: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    password: SecretStr | None = None
    password_hash: SecretStr | None = None
    api_tokens: CommaList = Field(default_factory=list)
    local_demo: bool = False
    session_secret: SecretStr | None = None
    session_idle_s: int = Field(default=30 * 60, gt=0)
    session_max_s: int = Field(default=12 * 3600, gt=0)
    login_max_failures: int = Field(default=5, gt=0)
    login_window_s: int = Field(default=300, gt=0)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto the API believes (addresses or CIDR
    # networks); none by default, so a client cannot pick its own address with a header.
    trusted_proxies: Networks = Field(default_factory=list)

    # Limits on what one client can ask of the service.
    max_body_bytes: int = Field(default=512 * 1024, gt=0)
    max_active_runs: int = Field(default=50, gt=0)
    # Recurring goals: how many, and how often at most (cron and interval alike).
    max_schedules: int = Field(default=50, gt=0)
    min_schedule_s: int = Field(default=60, gt=0)
    # Event streams (GET /task/{id}/events) one client may hold open at once, per API process.
    max_streams_per_client: int = Field(default=20, gt=0)
    # A connection that has not sent a whole request head (line and headers) in this time
    # is closed.
    header_timeout_s: float = Field(default=10.0, gt=0)
    # Goal runs the runner executes at once (each is a process); the rest wait their turn.
    runner_limit: int = Field(default_factory=lambda: 4 * (os.cpu_count() or 1), gt=0)
    approval_timeout_s: int = Field(default=24 * 3600, gt=0)
    events_heartbeat_s: float = Field(default=15.0, gt=0)
    # The warm runner claims goal runs from Prefect's event stream; its poll is the safety net
    # (and how soon a scheduled run is seen once it falls due).
    runner_poll_s: int = Field(default=2, gt=0)
    # `warm` (flows/warm_runner.py) or `stock`: Prefect's own `serve` (the benchmark baseline).
    runner: Literal["warm", "stock"] = "warm"
    heartbeat_s: int = Field(default=30, ge=30)  # Prefect refuses less
    zombie_after_s: int = Field(default=90, gt=0)

    # Browse subtasks (tasks/browse.py): the browser, what the SSRF guard lets through, limits.
    # Search subtasks: a SearXNG-compatible JSON endpoint, Anthropic's server-side web search,
    # or a folder of documents searched with BM25 (tasks/retrievers). None: no search kind.
    search_url: str | None = None
    search: Literal["", "anthropic"] = ""
    search_corpus: Path | None = None
    search_hits: int = Field(default=8, gt=0, le=50)
    search_tier: str = "fast"  # the model that runs Anthropic's web search
    search_timeout_s: float = Field(default=15.0, gt=0)

    chromium_path: Path = Path("/usr/bin/chromium")
    # Hosts / CIDRs, optionally with a port, browse may reach; see core.web_guard.Allowlist.
    browse_allow: AllowlistSetting = Field(default_factory=Allowlist)
    # Hosts / CIDRs a recurring goal's `notify` webhook may reach despite the SSRF guard.
    notify_allow: AllowlistSetting = Field(default_factory=Allowlist)
    browse_nav_timeout_s: float = Field(default=15.0, gt=0)
    browse_total_s: float = Field(default=45.0, gt=0)
    browse_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    browse_max_pages: int = Field(default=10, gt=0)  # top-level documents: redirects, popups count
    browse_max_screenshots: int = Field(default=1, gt=0, le=20)
    browse_text_chars: int = Field(default=20_000, gt=0)
    browse_max_open: int = Field(default=4, gt=0)  # pages open at once in one worker process

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
        named = (self.planner_tier, self.join_tier, self.search_tier, self.replanner_tier)
        for name in (*named, *self.limits):
            if name not in self.tiers:
                raise ValueError(f"unknown tier {name!r}; known tiers: {', '.join(self.tiers)}")
        return self

    @property
    def limits(self) -> dict[str, int]:
        """Per-tier concurrency: `MISSION_TIER_LIMITS` wins over the tiers' own field."""
        return {n: t.concurrency for n, t in self.tiers.items() if t.concurrency} | self.tier_limits

    @property
    def tokens(self) -> list[str]:
        """The API bearer tokens (`MISSION_API_TOKENS`, comma-separated)."""
        return [t.get_secret_value() for t in self.api_tokens]

    @property
    def replanner_tier(self) -> str:
        return self.replan_tier or self.planner_tier

    @property
    def has_search(self) -> bool:
        return bool(self.search_url or self.search or self.search_corpus)

    def plan_limits(self) -> PlanLimits:
        return PlanLimits(
            kinds=BASE_KINDS | ({"search"} if self.has_search else set()),
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


_settings_lock = threading.Lock()


@lru_cache(maxsize=1)
def _read_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(f"invalid MISSION_* setting: {exc}") from exc


def get_settings() -> Settings:
    """The settings, read once per process; the first callers may be several threads at
    once (a goal run's first subtasks), and all of them get the same object."""
    with _settings_lock:
        return _read_settings()


def forget_settings() -> None:
    """Read the environment again at the next get_settings() (tests and benchmarks)."""
    _read_settings.cache_clear()
