"""Webhook replays: remember the updates a channel delivered, so each is handled once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, delete, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import SeenUpdate, UTCDateTime

# Telegram keeps an update it could not deliver for 24 hours; a replay cannot come later.
KEEP = timedelta(hours=24)
_PG_FIRST_SIGHTS = text(
    "INSERT INTO seen_update (channel, update_id, received_at)"
    " SELECT CAST(:channel AS VARCHAR), u, CAST(:now AS TIMESTAMP WITHOUT TIME ZONE)"
    " FROM unnest(CAST(:ids AS VARCHAR[])) AS u"
    " ON CONFLICT (channel, update_id) DO NOTHING RETURNING update_id"
).bindparams(
    bindparam("channel", type_=String()),
    bindparam("ids", type_=postgresql.ARRAY(String())),
    bindparam("now", type_=UTCDateTime()),
)

# The same on SQLite, the ids as one JSON array: one statement text whatever the batch size, so
# compiled once (a VALUES list of the batch's length was compiled anew for nearly every batch).
_SQLITE_FIRST_SIGHTS = text(
    "INSERT INTO seen_update (channel, update_id, received_at)"
    " SELECT :channel, value, :now FROM json_each(:ids) WHERE true"
    " ON CONFLICT (channel, update_id) DO NOTHING RETURNING update_id"
).bindparams(
    bindparam("channel", type_=String()),
    bindparam("ids", type_=String()),
    bindparam("now", type_=UTCDateTime()),
)

# The same on a bare asyncpg connection (the webhook's intake keeps one): no session, no pool.
_PG_FIRST_SIGHTS_BARE = (
    "INSERT INTO seen_update (channel, update_id, received_at)"
    " SELECT $1::varchar, u, $3::timestamp FROM unnest($2::varchar[]) AS u"
    " ON CONFLICT (channel, update_id) DO NOTHING RETURNING update_id"
)


async def first_sight(
    session: AsyncSession, *, channel: str, update_id: str, now: datetime
) -> bool:
    """Record an update as received; tell whether this is the first time (across processes)."""
    return bool(await first_sights(session, channel=channel, update_ids=[update_id], now=now))


async def first_sights(
    session: AsyncSession, *, channel: str, update_ids: Sequence[str], now: datetime
) -> set[str]:
    """Record updates as received, in one statement; return those no one had seen before."""
    if not update_ids:
        return set()
    conn = await session.connection()
    return await first_sights_on(conn, channel=channel, update_ids=update_ids, now=now)


async def first_sights_on(
    conn: AsyncConnection, *, channel: str, update_ids: Sequence[str], now: datetime
) -> set[str]:
    """Record updates as received on a connection (no ORM session); return the new ones."""
    ids = list(dict.fromkeys(update_ids))
    if conn.dialect.name == "postgresql":
        # One statement text whatever the batch size: prepared once per connection.
        params = {"channel": channel, "ids": ids, "now": now}
        return set((await conn.execute(_PG_FIRST_SIGHTS, params)).scalars().all())
    params = {"channel": channel, "ids": json.dumps(ids), "now": now}
    return set((await conn.execute(_SQLITE_FIRST_SIGHTS, params)).scalars().all())


async def first_sights_bare(
    conn: Any, *, channel: str, update_ids: Sequence[str], now: datetime
) -> set[str]:
    """Record updates as received on a bare asyncpg connection (PostgreSQL); return the new ones."""
    if not update_ids:
        return set()
    ids = list(dict.fromkeys(update_ids))
    naive = now.astimezone(UTC).replace(tzinfo=None)
    return {row[0] for row in await conn.fetch(_PG_FIRST_SIGHTS_BARE, channel, ids, naive)}


async def prune(session: AsyncSession, *, now: datetime, keep: timedelta = KEEP) -> int:
    """Forget updates received longer than `keep` ago; return how many were forgotten."""
    stmt = delete(SeenUpdate).where(col(SeenUpdate.received_at) < now - keep)
    result = await session.exec(stmt)
    return int(result.rowcount or 0)
