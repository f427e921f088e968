"""SQLite on the loop's thread: same results and errors, writers in turn, a busy file awaited."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import db, sqlite_driver
from bot.db import create_engine, session_maker
from bot.sqlite_driver import LoopConnection, begins_write

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO t (name) VALUES ('other process')")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def _schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    await engine.dispose()


async def _hold_write_lock(path: Path, seconds: float) -> asyncio.subprocess.Process:
    """Start another process that holds the file's write lock for `seconds`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD, str(path), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"holding\n"
    return proc


def test_writes_are_told_from_reads() -> None:
    assert begins_write("INSERT INTO t VALUES (1)")
    assert begins_write("\n  update t set a = 1")
    assert begins_write("SAVEPOINT sa_savepoint_1")
    assert begins_write("\nCREATE TABLE t (id INTEGER)")
    assert begins_write("WITH x AS (SELECT 1) DELETE FROM t")
    assert not begins_write("SELECT * FROM t")
    assert not begins_write("WITH x AS (SELECT 1) SELECT * FROM x")
    assert not begins_write("PRAGMA foreign_keys=ON")
    assert not begins_write("RELEASE SAVEPOINT sa_savepoint_1")


async def test_statements_run_on_the_loop_thread_with_rows_counts_and_ids(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/one.db")
    seen: list[int] = []
    original = LoopConnection._step

    def step(self: LoopConnection, *args: object) -> object:
        seen.append(threading.get_ident())
        return original(self, *args)  # type: ignore[arg-type]

    LoopConnection._step = step  # type: ignore[method-assign]
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, LoopConnection)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('an')"))
            assert inserted.lastrowid == 1
            await conn.execute(
                text("INSERT INTO t (name) VALUES (:n)"), [{"n": "bình"}, {"n": "c"}]
            )
            changed = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
            assert changed.rowcount == 2
            rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "an"), (2, "bình!"), (3, "c!")]
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
            assert result.keys() == ["name"]
            assert result.fetchone() == ("an",)
            assert result.fetchmany(5) == [("bình!",), ("c!",)]
    finally:
        LoopConnection._step = original  # type: ignore[method-assign]
        await engine.dispose()
    assert set(seen) == {threading.get_ident()}


async def test_errors_and_rollback_as_before(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/two.db"
    await _schema(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
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
        async with engine.begin() as conn:  # and the writer lock was given back
            await conn.execute(text("INSERT INTO t (name) VALUES ('c')"))
    finally:
        await engine.dispose()


async def test_savepoint_rolls_back_alone(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/save.db"
    await _schema(url)
    maker = session_maker(create_engine(url))
    async with maker() as session:
        await _sql(session, "INSERT INTO t (name) VALUES ('an')")

        async def clash() -> None:
            async with session.begin_nested():
                await _sql(session, "INSERT INTO t (name) VALUES ('bình')")
                await _sql(session, "INSERT INTO t (name) VALUES ('an')")

        with pytest.raises(IntegrityError):
            await clash()
        await _sql(session, "INSERT INTO t (name) VALUES ('c')")
        await session.commit()
    async with maker() as session:
        names = (await _sql(session, "SELECT name FROM t ORDER BY id")).scalars().all()
    assert names == ["an", "c"]


async def test_many_writers_of_one_process_never_find_the_database_locked(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/many.db"
    await _schema(url)
    engine = create_engine(url)
    maker = session_maker(engine)

    async def person(i: int) -> None:
        for k in range(10):
            async with db.transaction(maker) as session:
                # read, yield to the others, then write: deferred transactions met BUSY here
                await _sql(session, "SELECT count(*) FROM t")
                await asyncio.sleep(0)
                await _sql(session, "INSERT INTO t (name) VALUES (:n)", {"n": f"{i}-{k}"})
                await asyncio.sleep(0)
                await _sql(session, "UPDATE t SET name = name WHERE id = 1")

    try:
        await asyncio.gather(*(person(i) for i in range(100)))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1000
    finally:
        await engine.dispose()


async def test_a_writer_waits_for_another_process_while_the_loop_serves(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    url = f"sqlite+aiosqlite:///{path}"
    await _schema(url)
    engine = create_engine(url)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    proc = await _hold_write_lock(path, 1.0)
    try:
        async with engine.connect() as conn:  # reads are not held up
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('ours')"))
        assert await proc.wait() == 0
        assert ticks >= 10  # the loop kept running while the write waited (~90 ticks unloaded)
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
        assert names == ["other process", "ours"]
    finally:
        ticker.cancel()
        await engine.dispose()


async def test_a_database_busy_past_the_limit_raises_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "busy.db"
    url = f"sqlite+aiosqlite:///{path}"
    await _schema(url)
    monkeypatch.setattr(db, "SQLITE_TIMEOUT_SECONDS", 0.3)
    engine = create_engine(url)
    proc = await _hold_write_lock(path, 2)
    try:
        with pytest.raises(OperationalError, match=r"database is locked: .* limit is 0.3 s"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (name) VALUES ('ours')"))
        # the writer lock was given back: a later writer gets in once the other process is done
        assert await proc.wait() == 0
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('later')"))
    finally:
        await engine.dispose()


async def test_this_process_holding_past_the_limit_raises_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/self.db"
    await _schema(url)
    monkeypatch.setattr(db, "SQLITE_TIMEOUT_SECONDS", 0.2)
    maker = session_maker(create_engine(url))
    async with maker() as holder:
        await _sql(holder, "INSERT INTO t (name) VALUES ('held')")
        with pytest.raises(OperationalError, match="this process's writers kept it"):
            async with maker() as second:
                await _sql(second, "INSERT INTO t (name) VALUES ('second')")
        await holder.commit()


async def test_memory_a_reader_closing_leaves_another_tasks_write_alone() -> None:
    """The Zalo lane's lost list: a read-only session's ROLLBACK undid another's insert."""
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    await _schema_on(engine)
    maker = session_maker(engine)
    wrote, read = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with db.transaction(maker) as session:
            await _sql(session, "INSERT INTO t (name) VALUES ('shown')")
            wrote.set()
            await read.wait()

    async def reader() -> None:
        await wrote.wait()
        async with maker() as session:  # closes with a ROLLBACK, on the same connection
            await _sql(session, "SELECT count(*) FROM t")
        read.set()

    await asyncio.gather(writer(), reader())
    async with maker() as session:
        names = (await _sql(session, "SELECT name FROM t")).scalars().all()
    assert names == ["shown"]
    await engine.dispose()


async def test_memory_writers_of_two_tasks_take_turns() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    await _schema_on(engine)
    maker = session_maker(engine)

    async def failing() -> None:
        async with db.transaction(maker) as session:
            await _sql(session, "INSERT INTO t (name) VALUES ('undone')")
            await asyncio.sleep(0.01)
            raise RuntimeError("undo")

    async def keeping() -> None:
        await asyncio.sleep(0)
        async with db.transaction(maker) as session:
            await _sql(session, "INSERT INTO t (name) VALUES ('kept')")

    results = await asyncio.gather(failing(), keeping(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    async with maker() as session:
        names = (await _sql(session, "SELECT name FROM t")).scalars().all()
    assert names == ["kept"]
    await engine.dispose()


async def _sql(session: AsyncSession, sql: str, params: dict[str, str] | None = None) -> Any:
    """Run SQL text in a session's transaction."""
    return await (await session.connection()).execute(text(sql), params or {})


async def _schema_on(engine: object) -> None:
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))


LOGGED = "INSERT INTO t (name) VALUES ('logged')"
QUIET = "INSERT INTO t (name) VALUES ('quiet')"


async def test_a_long_write_is_logged_unless_expected(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(sqlite_driver, "LONG_HOLD_SECONDS", 0.0)
    url = f"sqlite+aiosqlite:///{tmp_path / 'long.db'}"
    await _schema(url)
    engine = create_engine(url)
    maker = session_maker(engine)
    with caplog.at_level("WARNING", logger="bot.sqlite_driver"):
        async with db.transaction(maker) as session:
            await (await session.connection()).execute(text(LOGGED))
        with sqlite_driver.long_writes_expected():
            async with db.transaction(maker) as session:
                await (await session.connection()).execute(text(QUIET))
    await engine.dispose()
    assert LOGGED in caplog.text
    assert "quiet" not in caplog.text
