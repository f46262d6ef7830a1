"""Prefect server internals (see the package's docstring): imported by the server process
only."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from prefect.server.api import server as _server
from prefect.server.database.configurations import (
    SQLITE_BEGIN_MODE as SQLITE_BEGIN_MODE,
)
from prefect.server.database.configurations import (
    AioSqliteConfiguration as AioSqliteConfiguration,
)
from prefect.server.database.dependencies import MODELS_DEPENDENCIES
from starlette.middleware.trustedhost import TrustedHostMiddleware


def use_database_config(config: Any) -> None:
    """The Prefect server started in this process uses `config` for its database."""
    MODELS_DEPENDENCIES["database_config"] = config


def refuse_foreign_hosts(hosts: Sequence[str]) -> None:
    """The Prefect server `prefect server start` runs in this process answers only requests
    whose Host header names one of `hosts` (Starlette's TrustedHostMiddleware; others get
    400): a web page on a name of its own that resolves to 127.0.0.1 (DNS rebinding) cannot
    talk to it.

    `prefect server start` serves `create_app(final=True)`, looked up in
    `prefect.server.api.server` when it starts; only that app is wrapped. The server's own
    in-process clients call `create_app()` for the unwrapped app (they address it as
    `prefect-in-memory`, not over the network).
    """
    original = _server.create_app

    @functools.wraps(original)
    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        if kwargs.get("final"):
            return TrustedHostMiddleware(app, allowed_hosts=list(hosts))
        return app

    _server.create_app = create_app
