"""Sessions ended by a logout, kept in the Prefect server every API replica shares: one
Prefect Variable per ended session, named by a digest of the session id (never the id
itself) and holding the time the session would have expired anyway; those past it are
removed at the next logout."""

from __future__ import annotations

import contextlib
import hashlib
import time

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from services.busy import when_not_busy

PREFIX = "mission_logout_"


def variable_name(sid: str) -> str:
    return PREFIX + hashlib.sha256(sid.encode()).hexdigest()[:48]


async def end_session(client: PrefectClient, sid: str, until: int) -> None:
    """Record that session `sid` ended (it would have expired at `until`, epoch seconds)."""
    ended = VariableCreate(name=variable_name(sid), value=until)
    with contextlib.suppress(ObjectAlreadyExists):  # ended twice, or on two replicas
        await when_not_busy(lambda: client.create_variable(ended))
    await forget_expired(client, time.time())


async def session_ended(client: PrefectClient, sid: str) -> bool:
    return await client.read_variable_by_name(variable_name(sid)) is not None


async def forget_expired(client: PrefectClient, now: float) -> int:
    """Remove the records of sessions that have expired by now; how many."""
    expired = [
        variable.name
        for variable in await client.read_variables()
        if variable.name.startswith(PREFIX)
        and isinstance(variable.value, int | float)
        and variable.value < now
    ]
    for name in expired:
        with contextlib.suppress(ObjectNotFound):  # another replica was quicker
            await when_not_busy(lambda: client.delete_variable_by_name(name))  # noqa: B023
    return len(expired)
