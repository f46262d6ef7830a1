"""The Prefect internals core/prefect_compat uses are where it expects them, in the shape it
expects: a Prefect upgrade that moves one fails here, by name, not in a goal run."""

from __future__ import annotations

import inspect
import threading
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

import prefect
import pytest

from core import prefect_compat


def test_the_installed_prefect_is_the_series_the_internals_were_read_from() -> None:
    assert prefect.__version__.startswith(prefect_compat.PREFECT_SERIES), (
        f"Prefect {prefect.__version__}: re-read the internals listed in core/prefect_compat "
        f"(written against {prefect_compat.PREFECT_SERIES}x), then update PREFECT_SERIES"
    )


def test_the_no_limit_cache_is_a_locked_dict_keyed_by_tag_sets() -> None:
    from prefect.concurrency import services

    assert isinstance(services._cache_lock, type(threading.Lock()))
    assert isinstance(services._no_limits_cache, MutableMapping)  # a TTLCache in 3.8
    key = frozenset({"tag:tier:compat-test"})
    prefect_compat.remember_no_tag_limits([key])
    assert services._no_limits_cache[key] is True
    del services._no_limits_cache[key]


def test_a_tag_set_known_to_have_no_limit_is_answered_in_the_task_runs_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.concurrency._sync as prefect_sync
    import prefect.task_engine as task_engine
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse

    # The engine enters tag concurrency through this module global, names by keyword.
    start = inspect.getsource(task_engine.SyncTaskRunEngine.start)
    assert "with _concurrency(" in start and 'names=[f"tag:{tag}"' in start
    asked: list[list[str]] = []

    def lease(names: list[str], *args: Any, **kwargs: Any) -> ConcurrencyLimitWithLeaseResponse:
        asked.append(names)  # Prefect's path: a hop to its event loop thread and the server
        return ConcurrencyLimitWithLeaseResponse(lease_id=uuid4(), limits=[])

    monkeypatch.setattr(prefect_sync, "acquire_concurrency_slots_with_lease", lease)
    known = frozenset({"tag:tier:compat-known"})
    prefect_compat.remember_no_tag_limits([known])
    installed = task_engine._concurrency
    prefect_compat.remember_no_tag_limits([known])  # installed once, however often it is told
    assert task_engine._concurrency is installed is not prefect_sync.concurrency
    with task_engine._concurrency(names=sorted(known), occupy=1, lease_duration=60):
        pass
    assert asked == []
    # Anything the cache does not know (a tier tag an operator put a limit on) goes to Prefect.
    with task_engine._concurrency(names=["tag:tier:compat-limited"], occupy=1):
        pass
    assert asked == [["tag:tier:compat-limited"]]
    with task_engine._concurrency(names=[], occupy=1):  # untagged: Prefect asks nobody either
        pass
    assert len(asked) == 1
    from prefect.concurrency import services

    del services._no_limits_cache[known]


def test_the_server_internals_have_the_shape_prefect_sqlite_relies_on() -> None:
    from core.prefect_compat import server

    assert isinstance(server.SQLITE_BEGIN_MODE, ContextVar)
    assert callable(getattr(server.AioSqliteConfiguration, "begin_transaction", None))
    assert "database_config" in server.MODELS_DEPENDENCIES


def test_prefect_server_start_serves_the_app_it_builds_with_final_true() -> None:
    """refuse_foreign_hosts wraps the app `prefect server start` serves, which it finds by
    the call `create_app(final=True, ...)` made when the server starts."""
    import inspect

    from prefect.cli import _server_utils
    from prefect.server.api import server

    assert "create_app(final=True" in inspect.getsource(_server_utils._run_in_foreground)
    assert "from prefect.server.api.server import create_app" in inspect.getsource(
        _server_utils._run_in_foreground
    )
    assert callable(server.create_app)


def test_a_lean_goal_run_has_no_heartbeats_and_no_suspension_observer() -> None:
    import prefect.flow_engine
    from prefect.settings import get_current_settings

    # What lean_goal_run replaces must be where it looks for it.
    assert callable(prefect.flow_engine.observe_flow_run_suspension)
    assert get_current_settings().flows.heartbeat_frequency is not None  # on by default
    with prefect_compat.lean_goal_run():
        assert get_current_settings().flows.heartbeat_frequency is None
        with prefect.flow_engine.observe_flow_run_suspension(None, None):  # a no-op now
            pass
    assert get_current_settings().flows.heartbeat_frequency is not None


def test_prefect_clients_share_one_tls_context_per_ca_file_once_asked_to() -> None:
    import ssl

    import certifi
    import prefect._internal.version_checking as version_checking
    import prefect.client.orchestration as orchestration
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient

    # Where Prefect makes each client's context: still by this call, in both clients and in
    # the version check of an event stream.
    for made_in in (PrefectClient, SyncPrefectClient, version_checking):
        assert "ssl.create_default_context(cafile=cert_file)" in inspect.getsource(made_in)
    prefect_compat.share_tls_context()
    shared = getattr(orchestration, "ssl")  # noqa: B009
    # The context of Prefect's CA file is made at once (a fork server's children inherit it).
    from prefect.settings import PREFECT_API_SSL_CERT_FILE

    assert (PREFECT_API_SSL_CERT_FILE.value() or certifi.where()) in shared._made
    first = shared.create_default_context(cafile=certifi.where())
    assert shared.create_default_context(cafile=certifi.where()) is first
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    # Without a CA file (the insecure setting changes the context it gets): a new one each time.
    assert shared.create_default_context() is not shared.create_default_context()
    assert shared.CERT_NONE is ssl.CERT_NONE and shared.SSLContext is ssl.SSLContext
    # Clients built now take the shared context of their CA file (PREFECT_API_SSL_CERT_FILE).
    contexts = [
        client._client._transport._pool._ssl_context
        for client in (SyncPrefectClient("http://127.0.0.1:9/api") for _ in range(2))
    ]
    assert contexts[0] is contexts[1] and contexts[0] in shared._made.values()
    assert getattr(version_checking, "ssl") is shared  # noqa: B009


def test_a_task_variant_is_what_with_options_makes_for_the_same_four_options() -> None:
    from tasks.subtask import run_subtask

    options: dict[str, Any] = {
        "name": "s1: Read {{it}}",
        "task_run_name": "s1: Read {{it}}",
        "tags": ["tier:fast"],
        "retries": 3,
    }
    variant = prefect_compat.task_variant(run_subtask, **options)
    made = run_subtask.with_options(**options)
    assert vars(variant) == vars(made)
    assert variant.tags is not run_subtask.tags and run_subtask.tags == set()
    assert run_subtask.name == "subtask" and run_subtask.retries != 3
