"""Which sessions a logout has ended, as this API process sees them.

Sessions are signed cookies, so a copy of one stays valid until it expires unless the server
remembers that it ended. This process knows its own logouts at once; another replica's are
read from the Prefect server they all share (services/logouts.py), once per session per
CHECK_EVERY_S at most: a logout on one replica is refused by every other within that time.
While the Prefect server is known to be away, only what this process knows is checked (every
route that reads data answers 503 then anyway).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Prefect is imported once the process points at its server
    from prefect.client.orchestration import PrefectClient

CHECK_EVERY_S = 2.0
MAX_REMEMBERED = 10_000


class Logouts:
    def __init__(
        self, clock: Callable[[], float] = time.time, check_every_s: float = CHECK_EVERY_S
    ) -> None:
        self._clock = clock
        self.check_every_s = check_every_s
        # sid -> (ended, when it was last asked); least recently asked first.
        self._known: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def _remember(self, sid: str, ended: bool) -> None:
        self._known[sid] = (ended, self._clock())
        self._known.move_to_end(sid)
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)

    async def end(self, sid: str, until: int, prefect: PrefectClient | None) -> None:
        """End session `sid` here at once, and for every replica through `prefect`."""
        self._remember(sid, True)
        if prefect is not None:
            from services import logouts

            await logouts.end_session(prefect, sid, until)

    def known_ended(self, sid: str) -> bool:
        """What this process knows already, without asking (for synchronous callers)."""
        known = self._known.get(sid)
        return known is not None and known[0]

    async def ended(self, sid: str, prefect: PrefectClient | None) -> bool:
        known = self._known.get(sid)
        if known is not None and (known[0] or self._clock() - known[1] < self.check_every_s):
            return known[0]
        if prefect is None:
            return False
        from services import logouts

        ended = await logouts.session_ended(prefect, sid)
        self._remember(sid, ended)
        return ended
