"""Typed dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prefect.client.orchestration import PrefectClient

from api.hub import ProgressHub
from core.settings import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_prefect(request: Request) -> PrefectClient:
    client: PrefectClient = request.app.state.prefect
    return client


def get_hub(request: Request) -> ProgressHub:
    hub: ProgressHub = request.app.state.hub
    return hub


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
PrefectDep = Annotated[PrefectClient, Depends(get_prefect)]
HubDep = Annotated[ProgressHub, Depends(get_hub)]
