"""Engine and sessions: the same async code on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import sqlite_driver

SessionMaker = async_sessionmaker[AsyncSession]
CONNECT_SECONDS = 10


def is_sqlite(url: str) -> bool:
    """Tell whether a database URL is SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Turn on foreign keys, WAL and a busy timeout on every SQLite connection."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create an async engine; make the SQLite file's folder if needed."""
    kwargs: dict[str, Any] = {"echo": echo}
    if make_url(url).get_driver_name() == "aiosqlite":
        kwargs["module"] = sqlite_driver.dbapi()  # one trip to aiosqlite's thread per statement
    if is_sqlite(url):
        database = make_url(url).database
        if database in (None, "", ":memory:"):
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
    else:
        # An unroutable host fails in seconds, not after asyncpg's default minute.
        kwargs.update(
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            connect_args={"timeout": CONNECT_SECONDS},
        )
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


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
