"""Test wiring: a fake Anthropic server and a real Prefect server, both on loopback.

Environment is set here, at import, because Prefect reads its settings when first imported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.local_server import server_auth
from tests.fakes.anthropic_server import FakeAnthropic
from tests.stack import free_port

if TYPE_CHECKING:
    from core.local_server import PrefectServer

_HOME = Path(tempfile.mkdtemp(prefix="mission-tests-"))
_PREFECT_PORT = free_port()
_FAKE = FakeAnthropic().start()

os.environ.update(
    MISSION_HOME=str(_HOME),
    MISSION_PROVIDER="anthropic",
    MISSION_PREFECT_PORT=str(_PREFECT_PORT),
    ANTHROPIC_API_KEY="test-key-not-real",
    ANTHROPIC_BASE_URL=_FAKE.url,
    PREFECT_HOME=str(_HOME / "prefect"),
    PREFECT_API_URL=f"http://127.0.0.1:{_PREFECT_PORT}/api",
    # The session's credentials: every Prefect server the tests start asks for them (one
    # server per home would otherwise have its own), and every client sends them.
    PREFECT_API_AUTH_STRING=server_auth(_HOME),
    PREFECT_UI_URL=f"http://127.0.0.1:{_PREFECT_PORT}",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_LOGGING_LEVEL="WARNING",
    # Run logs are not read by any test; shipping them only adds noise at interpreter exit.
    PREFECT_LOGGING_TO_API_ENABLED="false",
)
for name in list(os.environ):
    if name.startswith("MISSION_") and name not in {
        "MISSION_HOME",
        "MISSION_PROVIDER",
        "MISSION_PREFECT_PORT",
    }:
        del os.environ[name]


def reset_settings() -> None:
    """Drop cached settings and providers so the next call sees the current environment."""
    from core import gateway
    from core.settings import forget_settings

    forget_settings()
    gateway._providers.clear()


# Fixtures that start a Prefect server, a whole stack or llama-server (tests/real_model, which
# builds it on first use): a test using one belongs in the slow
# tier, and the quick tier (`pytest -m "not slow"`) must never start one by accident.
SLOW_FIXTURES = frozenset({"prefect_server", "own_prefect", "stack", "llama_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests start a Prefect server or a stack but are not marked slow:\n"
            + "\n".join(unmarked)
        )


@pytest.fixture(autouse=True)
def _no_real_model_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every model call in tests goes to the fake server on loopback, never to a real API."""
    assert os.environ["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    _FAKE.reset()
    yield _FAKE
    _FAKE.reset()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server (SQLite) for the whole session."""
    from core.local_server import PrefectServer

    server = PrefectServer(home=_HOME, port=_PREFECT_PORT).start()
    yield server.api_url
    server.stop()


@pytest.fixture
def own_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server of the test's own: stopping it harms no other test, and no other
    test's runner takes its goal runs."""
    from core.local_server import PrefectServer

    server = PrefectServer(home=tmp_path_factory.mktemp("own-prefect"), port=free_port())
    yield server.start()
    server.stop()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set MISSION_* variables for one test; settings are re-read on the next call."""
    yield monkeypatch
    reset_settings()
