"""PostgreSQL's pool: an idle connection is pinged before use and replaced when dead; a busy one
goes without the ping's round trips."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot import db
from tests.conftest import PG_SKIP


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    """Return the throwaway PostgreSQL database, or skip."""
    if pg_database is None:
        pytest.skip(PG_SKIP)
    return pg_database


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record the pings the dialect makes."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    made: list[object] = []
    original = PGDialect_asyncpg.do_ping

    def counted(self: Any, dbapi_connection: Any) -> bool:
        made.append(dbapi_connection)
        return bool(original(self, dbapi_connection))

    monkeypatch.setattr(PGDialect_asyncpg, "do_ping", counted)
    return made


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_busy_connection_is_not_pinged(pg_url: str, pings: list[object]) -> None:
    engine = db.create_engine(pg_url)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # the same pooled connection, used again
        assert pings == []
    finally:
        await engine.dispose()


async def test_an_idle_dead_connection_is_replaced_before_use(
    pg_url: str, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # every connection counts as idle
    engine, admin = db.create_engine(pg_url), db.create_engine(pg_url)
    try:
        first = await _backend_pid(engine)
        async with admin.connect() as conn:  # the server drops the pooled connection
            await conn.execute(text(f"SELECT pg_terminate_backend({first})"))
        second = await _backend_pid(engine)  # no error: the ping found it dead
        assert second != first
        assert len(pings) >= 1
    finally:
        await engine.dispose()
        await admin.dispose()
