"""How many event streams each client holds open, in this API process: one client (a token,
a session, or on the open demo an address) may hold MISSION_MAX_STREAMS_PER_CLIENT at once;
one more gets 429 until one of its streams ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.auth import UserDep, current_session
from api.deps import SettingsDep

RETRY_AFTER_S = 5


class StreamCounts:
    """Open streams per client; all in the event loop of one process, so no lock."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def take(self, client: str, limit: int) -> int | None:
        """Count one more stream for `client`; None when it holds `limit` already (then its
        count is returned instead)."""
        held = self._open.get(client, 0)
        if held >= limit:
            return held
        self._open[client] = held + 1
        return None

    def give_back(self, client: str) -> None:
        held = self._open.get(client, 0) - 1
        if held > 0:
            self._open[client] = held
        else:
            self._open.pop(client, None)

    def held(self, client: str) -> int:
        return self._open.get(client, 0)


def client_of(request: Request, kind: str, name: str) -> str:
    """Who holds a stream: the token, the session, or (the open demo) the address."""
    if kind == "token":
        return f"token:{name}"
    session = current_session(request, refresh=False)
    if kind == "session" and session is not None:
        return f"session:{session.sid}"
    return f"address:{request.client.host if request.client else 'unknown'}"


async def stream_slot(
    request: Request, user: UserDep, settings: SettingsDep
) -> AsyncIterator[None]:
    """Held for as long as the response streams (FastAPI runs the rest after it is sent)."""
    counts: StreamCounts = request.app.state.streams
    client = client_of(request, user.kind, user.name)
    limit = settings.max_streams_per_client
    held = counts.take(client, limit)
    if held is not None:
        raise HTTPException(
            429,
            f"this client has {held} event streams open, the limit is {limit} "
            "(MISSION_MAX_STREAMS_PER_CLIENT); close one and try again",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        yield
    finally:
        counts.give_back(client)


StreamSlotDep = Annotated[None, Depends(stream_slot)]
