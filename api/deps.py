"""Typed dependencies shared by the routes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from prefect.client.orchestration import PrefectClient

from api.deltas import DeltaBoard
from api.hub import ProgressHub
from api.prefect_link import PrefectLink
from core.settings import Settings
from services.active_runs import ActiveRuns


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
    """Held while this process creates a recurring goal: the count of schedules against
    their cap and the create, one at a time."""
    lock: asyncio.Lock = request.app.state.writes
    return lock


def get_active_runs(request: Request) -> ActiveRuns:
    """This process's count of active goal runs, for the cap (services/active_runs.py)."""
    active: ActiveRuns = request.app.state.active_runs
    return active


def get_hub(request: Request) -> ProgressHub:
    hub: ProgressHub = request.app.state.hub
    return hub


def get_deltas(request: Request) -> DeltaBoard:
    board: DeltaBoard = request.app.state.deltas
    return board


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
PrefectDep = Annotated[PrefectClient, Depends(get_prefect)]
HubDep = Annotated[ProgressHub, Depends(get_hub)]
DeltasDep = Annotated[DeltaBoard, Depends(get_deltas)]
WritesDep = Annotated[asyncio.Lock, Depends(get_writes)]
ActiveRunsDep = Annotated[ActiveRuns, Depends(get_active_runs)]
