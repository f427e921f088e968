"""Engine and sessions: the same async code on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import sqlite_driver

SessionMaker = async_sessionmaker[AsyncSession]
CONNECT_SECONDS = 10
# SQLite statements run on the event loop's thread, writers taking turns (bot/sqlite_driver.py);
# False gives stock aiosqlite (a thread per connection, SQLite's own busy timeout).
SQLITE_ON_LOOP = True
SQLITE_TIMEOUT_SECONDS = 30
# A pooled PostgreSQL connection idle this long is pinged before use (a server restart shows
# then, not in the transaction). SQLAlchemy's pre-ping on every checkout cost asyncpg three
# round trips (BEGIN, a ping, ROLLBACK) per transaction: most of what an update spent waiting.
PING_IDLE_SECONDS = 2.0
IDLE_SINCE = "idle_since"
POOL_SIZE = 20  # PostgreSQL connections kept per process
POOL_OVERFLOW = 10  # opened past it at a peak, closed when given back


def is_sqlite(url: str) -> bool:
    """Tell whether a database URL is SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Turn on foreign keys, WAL and a busy timeout on every SQLite connection."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    if not isinstance(dbapi_conn, sqlite_driver.LoopConnection):  # it awaits a busy database
        cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create an async engine; make the SQLite file's folder if needed."""
    kwargs: dict[str, Any] = {"echo": echo}
    if make_url(url).get_driver_name() == "aiosqlite" and SQLITE_ON_LOOP:
        kwargs["module"] = sqlite_driver.dbapi()  # statements on the loop's thread
    if is_sqlite(url):
        database = make_url(url).database
        if database in (None, "", ":memory:"):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_SECONDS}
    else:
        # An unroutable host fails in seconds, not after asyncpg's default minute.
        # Kept open: 16 updates handled at once, the dispatcher and the jobs. Connections past
        # the pool's size are closed when given back, and reopening one cost ~3 ms of CPU.
        kwargs.update(
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            connect_args={"timeout": CONNECT_SECONDS},
        )
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use when it has been idle a while; replace a dead one."""
    dialect = engine.sync_engine.dialect

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    def connect(_dbapi_conn: Any, record: Any) -> None:
        record.info.pop(IDLE_SINCE, None)  # new: nothing to ping

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as err:  # the pool drops it and takes another (three tries)
            raise DisconnectionError(f"idle connection is gone: {err}") from err

    pool = engine.sync_engine.pool
    event.listen(pool, "checkin", checkin)
    event.listen(pool, "connect", connect)
    event.listen(pool, "checkout", checkout)


def session_maker(engine: AsyncEngine) -> SessionMaker:
    """Return a factory of sessions that keep objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(maker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """Open a session, commit on success, roll back on error."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
