"""Typed dependencies shared by the routes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from prefect.client.orchestration import PrefectClient

from api.hub import ProgressHub
from api.prefect_link import PrefectLink
from core.settings import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_prefect(request: Request) -> PrefectClient:
    """The app's Prefect client; a 503 at once while the server is known to be away."""
    link: PrefectLink = request.app.state.link
    link.require()
    client: PrefectClient = request.app.state.prefect
    return client


def get_writes(request: Request) -> asyncio.Lock:
    """Held while this process creates a goal run: one submission at a time from the API
    (which also keeps the active-run cap exact), since the Prefect server on SQLite takes one
    writer at a time and answers a crowd of them with lock errors and retries (30 at once:
    144 lock errors, 15 s for the slowest)."""
    lock: asyncio.Lock = request.app.state.writes
    return lock


def get_hub(request: Request) -> ProgressHub:
    hub: ProgressHub = request.app.state.hub
    return hub


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
PrefectDep = Annotated[PrefectClient, Depends(get_prefect)]
HubDep = Annotated[ProgressHub, Depends(get_hub)]
WritesDep = Annotated[asyncio.Lock, Depends(get_writes)]
