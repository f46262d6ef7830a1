"""Settings are parsed once, at start, into typed fields; a bad one is refused by name."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError
from core.settings import Settings, forget_settings, get_settings


def test_no_proxy_is_trusted_unless_named(settings_env: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxies == []
    settings_env.setenv("MISSION_TRUSTED_PROXIES", "172.30.0.10, 10.0.0.0/8")
    assert Settings().trusted_proxies == ["172.30.0.10", "10.0.0.0/8"]


def test_name_number_pairs_and_lists_are_typed_fields(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("MISSION_SIMULATED_LATENCY_MS", "vision=600, fast=100")
    settings_env.setenv("MISSION_TIER_LIMITS", "fast=2")
    settings_env.setenv("MISSION_API_TOKENS", "first-token, second-token")
    settings_env.setenv("MISSION_BROWSE_ALLOW", "127.0.0.1:8765")
    settings = Settings()
    assert settings.simulated_latency_ms == {"vision": 600, "fast": 100}
    assert settings.tier_limits == {"fast": 2} and settings.limits["fast"] == 2
    assert settings.tokens == ["first-token", "second-token"]
    assert "first-token" not in repr(settings)  # tokens stay secret in logs
    assert settings.browse_allow.networks[0][1] == 8765


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MISSION_SIMULATED_LATENCY_MS", "vision=slow"),
        ("MISSION_TIER_LIMITS", "fast"),
        ("MISSION_BROWSE_ALLOW", "not a host!"),
        ("MISSION_TIER_LIMITS", "nosuchtier=2"),
        ("MISSION_TRUSTED_PROXIES", "10.0.0.1, the-proxy"),
    ],
)
def test_a_bad_setting_is_refused_at_start_naming_it(
    settings_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    settings_env.setenv(name, value)
    forget_settings()
    with pytest.raises(ConfigurationError, match="invalid MISSION_"):
        get_settings()
