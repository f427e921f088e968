"""SQLite through aiosqlite in one trip per statement: same results, errors and transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot import db
from bot.db import create_engine
from bot.sqlite_driver import OneTripConnection


@pytest.fixture(autouse=True)
def one_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the one-trip driver here, though bot.db leaves it off for now."""
    monkeypatch.setattr(db, "SQLITE_ONE_TRIP", True)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the calls made on aiosqlite's thread."""
    made: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return made


async def test_statements_give_rows_counts_and_ids_in_one_trip_each(
    tmp_path: Path, trips: list[str]
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/one.db")
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, OneTripConnection)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('an')"))
            assert inserted.lastrowid == 1
            await conn.execute(
                text("INSERT INTO t (name) VALUES (:n)"), [{"n": "bình"}, {"n": "c"}]
            )
            trips.clear()
            changed = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
            assert changed.rowcount == 2
            rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "an"), (2, "bình!"), (3, "c!")]
            assert len(trips) == 2  # one per statement
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
            assert result.keys() == ["name"]
            assert result.fetchone() == ("an",)
            assert result.fetchmany(5) == [("bình!",), ("c!",)]
    finally:
        await engine.dispose()


async def test_errors_and_rollback_as_before(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/two.db")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('an')"))

        async def twice() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('bình')"))
                await conn.execute(text("INSERT INTO t (name) VALUES ('an')"))

        with pytest.raises(IntegrityError):
            await twice()
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
        assert names == ["an"]  # the failed transaction left nothing
    finally:
        await engine.dispose()
