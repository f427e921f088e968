"""One holder at a time across processes (the job runner, the poller): an advisory lock or a row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, select

from bot.clock import Clock
from bot.db import SessionMaker, transaction
from bot.models import JobLease

log = logging.getLogger(__name__)
JOBS = "jobs"
ADVISORY_KEY = 0x7265_666F_726D  # "reform": the job runner's lock in this database
POLLING = "polling"  # the lease of the one process that polls the Bot API for updates
POLLING_KEY = ADVISORY_KEY + 1
OWNER_MAX = 64
KEEPALIVE_PROBES = 3


def keepalive_settings(seconds: float) -> dict[str, int]:
    """Return PostgreSQL's TCP keepalive settings for a lock connection of a `seconds` lease.

    A holder whose machine vanishes (power, network) never closes its connection; with the
    kernel's defaults PostgreSQL would keep its advisory lock for over two hours. These make the
    server drop the connection, and so free the lock, within about two thirds of the lease.
    """
    idle = max(1, int(seconds / 3))
    interval = max(1, int(seconds / (3 * KEEPALIVE_PROBES)))
    return {
        "tcp_keepalives_idle": idle,
        "tcp_keepalives_interval": interval,
        "tcp_keepalives_count": KEEPALIVE_PROBES,
    }


def make_owner() -> str:
    """Return an id for this process: hostname:pid:random, at most 64 characters."""
    tail = f":{os.getpid()}:{secrets.token_hex(4)}"
    return socket.gethostname()[: OWNER_MAX - len(tail)] + tail


def engine_of(maker: SessionMaker) -> AsyncEngine:
    """Return the engine a session maker is bound to."""
    bind = maker.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session maker is not bound to an AsyncEngine")
    return bind


class Lease:
    """A named lease: only one owner holds it at a time, whatever the number of processes."""

    def __init__(
        self,
        maker: SessionMaker,
        *,
        clock: Clock,
        seconds: float,
        name: str = JOBS,
        owner: str | None = None,
        key: int = ADVISORY_KEY,
    ) -> None:
        self.maker, self.clock, self.seconds, self.name = maker, clock, seconds, name
        self.owner = owner or make_owner()
        self.key = key
        self.engine = engine_of(maker)
        self.postgres = self.engine.dialect.name == "postgresql"
        self.held = False
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (renew it if this owner does); tell whether held."""
        if self.held:
            return await self.renew()
        if self.postgres:
            self.held = await self._lock() and await self._write_row(force=True)
        else:
            self.held = await self._write_row(force=False)
        if not self.held:
            await self._unlock()
        return self.held

    async def renew(self) -> bool:
        """Extend the lease; False (and no longer held) when it was lost."""
        if not self.held:
            return False
        ok = await self._lock_alive() if self.postgres else True
        ok = ok and await self._extend_row()
        if not ok:
            log.warning("lease %s lost", self.name)
            await self._drop()
        return ok

    async def release(self) -> None:
        """Give the lease up so another process may take it at once."""
        if not self.held:
            return
        with contextlib.suppress(SQLAlchemyError, OSError):
            async with transaction(self.maker) as session:
                await session.exec(
                    delete(JobLease).where(
                        col(JobLease.name) == self.name, col(JobLease.owner) == self.owner
                    )
                )
        await self._drop()

    async def _drop(self) -> None:
        """Forget the lease and its lock."""
        self.held = False
        await self._unlock()

    def _insert(self) -> Any:
        """Return the dialect's INSERT that supports ON CONFLICT."""
        return (postgresql if self.postgres else sqlite).insert(JobLease)

    async def _write_row(self, *, force: bool) -> bool:
        """Insert or take over the lease row (when expired, unless forced); tell if it is ours."""
        now = self.clock.now()
        expires = now + timedelta(seconds=self.seconds)
        stmt = self._insert().values(name=self.name, owner=self.owner, expires_at=expires)
        takeover = (
            None
            if force
            else ((col(JobLease.expires_at) < now) | (col(JobLease.owner) == self.owner))
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": self.owner, "expires_at": expires},
            where=takeover,
        )
        try:
            async with transaction(self.maker) as session:
                await session.exec(stmt)
                holder = (
                    await session.exec(select(JobLease.owner).where(JobLease.name == self.name))
                ).first()
        except SQLAlchemyError:
            log.warning("could not write job lease %s", self.name, exc_info=True)
            return False
        return holder == self.owner

    async def _extend_row(self) -> bool:
        """Push the row's expiry back while this owner still holds it."""
        expires = self.clock.now() + timedelta(seconds=self.seconds)
        stmt = (
            update(JobLease)
            .where(col(JobLease.name) == self.name, col(JobLease.owner) == self.owner)
            .values(expires_at=expires)
        )
        try:
            async with transaction(self.maker) as session:
                result = await session.exec(stmt)
                changed = int(result.rowcount)
        except SQLAlchemyError:
            log.warning("could not renew job lease %s", self.name, exc_info=True)
            return False
        if changed == 0 and self.postgres:
            return await self._write_row(force=True)
        return changed == 1

    async def _lock(self) -> bool:
        """Take the advisory lock on a connection kept for as long as it is held."""
        try:
            conn = await self.engine.connect()
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
            for name, value in keepalive_settings(self.seconds).items():
                await conn.execute(
                    text("SELECT set_config(:name, :value, false)"),
                    {"name": name, "value": str(value)},
                )
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            ).scalar()
        except (SQLAlchemyError, OSError):
            log.warning("could not try the advisory lock of %s", self.name, exc_info=True)
            return False
        return bool(got)

    async def _lock_alive(self) -> bool:
        """Tell whether the lock's connection (hence the lock) is still there."""
        if self._conn is None:
            return False
        try:
            async with asyncio.timeout(max(1.0, self.seconds / 3)):
                await self._conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def _unlock(self) -> None:
        """Free the lock; discard its connection when unlocking failed (closing frees it)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            async with asyncio.timeout(5):
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
        except (SQLAlchemyError, OSError, TimeoutError):
            with contextlib.suppress(SQLAlchemyError, OSError):
                await conn.invalidate()
        with contextlib.suppress(SQLAlchemyError, OSError):
            await conn.close()
