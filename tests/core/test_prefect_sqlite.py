"""Prefect's server on SQLite with write transactions that take turns (core/prefect_sqlite.py),
driven through Prefect's own database configuration against a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy.exc import OperationalError

from core.prefect_sqlite import TakingTurns

WRITERS = 8


async def _read_then_write(config: AioSqliteConfiguration, writers: int) -> list[str]:
    """`writers` transactions at once, each reading, letting the others run, then writing, as
    Prefect's create-flow-run-from-deployment does. Returns what each one ended with."""
    engine = await config.engine()
    async with engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE IF NOT EXISTS run (n INTEGER)"))

    async def one(n: int) -> str:
        session = await config.session(engine)
        try:
            async with session, config.begin_transaction(session):
                await session.execute(sa.text("SELECT count(*) FROM run"))
                await asyncio.sleep(0.02)  # the others read and write meanwhile
                await session.execute(sa.text("INSERT INTO run VALUES (:n)"), {"n": n})
        except OperationalError as exc:
            return str(exc.orig)
        return "ok"

    outcomes = await asyncio.gather(*(one(n) for n in range(writers)))
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.text("SELECT count(*) FROM run"))).scalar_one()
    await engine.dispose()
    assert rows == outcomes.count("ok")
    return outcomes


def test_prefects_own_configuration_refuses_a_reader_that_turns_writer(tmp_path: Path) -> None:
    """The failure being fixed, shown on the unchanged configuration: a deferred transaction
    that read before another one wrote is refused at once, without the busy timeout."""
    config = AioSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")
    outcomes = asyncio.run(_read_then_write(config, WRITERS))
    assert "database is locked" in outcomes
    assert outcomes.count("ok") < WRITERS


def test_write_transactions_taking_turns_all_succeed(tmp_path: Path) -> None:
    config = TakingTurns(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")
    assert asyncio.run(_read_then_write(config, WRITERS)) == ["ok"] * WRITERS


def test_a_transaction_inside_another_of_the_same_task_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    """Prefect sometimes opens a session inside another; waiting for our own turn would hang."""
    config = TakingTurns(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")

    async def nested() -> int:
        engine = await config.engine()
        outer, inner = await config.session(engine), await config.session(engine)
        async with outer, config.begin_transaction(outer):
            await outer.execute(sa.text("CREATE TABLE run (n INTEGER)"))
            async with inner, config.begin_transaction(inner):
                value = (await inner.execute(sa.text("SELECT 1"))).scalar_one()
        await engine.dispose()
        return int(value)

    assert asyncio.run(asyncio.wait_for(nested(), 5)) == 1


def test_it_refuses_to_run_a_server_that_is_not_on_sqlite() -> None:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

    from core import prefect_sqlite

    url = "postgresql+asyncpg://127.0.0.1/test"
    with (
        temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: url}),
        pytest.raises(SystemExit, match="not postgresql"),
    ):
        prefect_sqlite.main()


def test_a_turn_that_does_not_come_in_time_is_skipped_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction that keeps its turn too long (here: one that waits on something else
    before its first statement) slows the next one down by TURN_WAIT_S, never stops it."""
    from core import prefect_sqlite

    monkeypatch.setattr(prefect_sqlite, "TURN_WAIT_S", 0.2)
    config = TakingTurns(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")

    async def two() -> int:
        engine = await config.engine()
        release = asyncio.Event()

        async def slow() -> None:
            session = await config.session(engine)
            async with session, config.begin_transaction(session):
                await release.wait()

        async def next_one() -> int:
            session = await config.session(engine)
            async with session, config.begin_transaction(session):
                await session.execute(sa.text("CREATE TABLE run (n INTEGER)"))
                await session.execute(sa.text("INSERT INTO run VALUES (1)"))
            release.set()
            return 1

        holder = asyncio.create_task(slow())
        await asyncio.sleep(0.05)  # `slow` has the turn
        done = await next_one()
        await holder
        await engine.dispose()
        return done

    with caplog.at_level("WARNING", logger=prefect_sqlite.log.name):
        assert asyncio.run(asyncio.wait_for(two(), 10)) == 1
    assert "goes ahead without it" in caplog.text
