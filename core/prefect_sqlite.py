"""Run Prefect's server on SQLite with its write transactions taking turns.

`python -m core.prefect_sqlite server start ...` is `prefect server start ...` with one change
to how the server opens a transaction on SQLite (`PrefectServer` starts it this way when it
has no PostgreSQL URL), behind the same Host check as core.local_server's.

Prefect opens its write transactions DEFERRED: the transaction reads first and asks for
SQLite's write lock at its first write. If another connection holds the lock at that moment,
SQLite answers "database is locked" at once, without waiting (it cannot wait for a reader to
become a writer), and the request fails with 503 for the client to retry. In a burst of 30
goal runs that was every few submissions: creating a flow run reads the deployment, then
inserts. Writers that do wait poll the lock on SQLite's busy timer, with no order among them,
so one can lose every round for Prefect's whole 60 s busy timeout.

Here a write transaction (`session_context(begin_transaction=True)`) first waits its turn
behind the server's other write transactions, first come first served, then begins
IMMEDIATE: it holds the write lock from its first statement, so it never has to upgrade.
A transaction opened inside another one of the same task keeps Prefect's own behaviour, and
a turn that has not come within `TURN_WAIT_S` goes ahead without one (and is logged), so
this can slow the server down but never stop it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

from core.local_server import LOCAL_HOSTS
from core.prefect_compat.server import (
    SQLITE_BEGIN_MODE,
    AioSqliteConfiguration,
    refuse_foreign_hosts,
    use_database_config,
)

TURN_WAIT_S = 10.0
# Under prefect.server: the server's log shows it in its own format, next to its own lines.
log = logging.getLogger("prefect.server.mission_sqlite_turns")

_in_turn: ContextVar[bool] = ContextVar("mission_sqlite_in_turn", default=False)
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _turn() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()  # wakes its waiters in the order they came
    return lock


class TakingTurns(AioSqliteConfiguration):
    """Prefect's SQLite configuration whose write transactions queue, then begin IMMEDIATE."""

    @asynccontextmanager
    async def begin_transaction(
        self, session: AsyncSession, with_for_update: bool = False
    ) -> AsyncIterator[AsyncSessionTransaction]:
        if _in_turn.get():
            async with super().begin_transaction(session, with_for_update) as transaction:
                yield transaction
            return
        turn = _turn()
        try:
            await asyncio.wait_for(turn.acquire(), TURN_WAIT_S)
            held = True
        except TimeoutError:
            held = False
            log.warning(
                "a write transaction waited %g s for its turn and goes ahead without it",
                TURN_WAIT_S,
            )
        in_turn = _in_turn.set(True)
        mode = SQLITE_BEGIN_MODE.set("IMMEDIATE")
        try:
            async with session.begin() as transaction:
                yield transaction
        finally:
            SQLITE_BEGIN_MODE.reset(mode)
            _in_turn.reset(in_turn)
            if held:
                turn.release()


def main() -> None:
    from prefect.cli import app
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = PREFECT_API_DATABASE_CONNECTION_URL.value()
    if url is None or not url.startswith("sqlite"):
        sys.exit(f"core.prefect_sqlite is for a Prefect server on SQLite, not {url}")
    use_database_config(TakingTurns(connection_url=url))
    refuse_foreign_hosts(LOCAL_HOSTS)
    app()


if __name__ == "__main__":
    main()
