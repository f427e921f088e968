"""Each unit's ratings added up per UTC day, in the transaction that stores them.

The scoreboard reads whole days from this table (rating_daily) instead of every rating. Every
write path that adds a rating calls `record` (or `add`) in the same transaction; the counts are
added with INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n, so two processes storing
ratings of the same unit and day never lose one. `rebuild` counts the table again from the
ratings (after a bulk load that bypassed `add`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date
from typing import Any

from sqlalchemy import ColumnElement, Table, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Rating, RatingDaily

TABLE: Table = RatingDaily.__table__  # type: ignore[attr-defined]
KEY = ("day", "unit_id")
LEVEL_COLUMNS = {level: f"level_{level}" for level in range(1, 6)}
# The scored elements, named as the table names them (the same as ratings.ELEMENTS, tested).
ELEMENTS = tuple(c.name.removesuffix("_sum") for c in TABLE.columns if c.name.endswith("_sum"))
COUNTS = (
    *LEVEL_COLUMNS.values(),
    *(f"{name}_{part}" for name in ELEMENTS for part in ("count", "sum")),
)


def utc_day(rating: Rating) -> date:
    """Return the UTC day a rating was stored on."""
    return rating.created_at.astimezone(UTC).date()


def _counts(rating: Rating) -> dict[str, int]:
    """Return what one rating adds to its day's row."""
    values = {column: int(rating.overall == level) for level, column in LEVEL_COLUMNS.items()}
    for name in ELEMENTS:
        score = getattr(rating, name)
        values[f"{name}_count"] = int(score is not None)
        values[f"{name}_sum"] = score or 0
    return values


async def record(session: AsyncSession, rating: Rating) -> None:
    """Add one stored rating to its unit's day (call in the transaction that stores it)."""
    await add(session, (rating,))


async def add(session: AsyncSession, ratings: Iterable[Rating]) -> None:
    """Add stored ratings to their units' days, one upsert for all of them."""
    rows: dict[tuple[date, int], dict[str, Any]] = {}
    for rating in ratings:
        key = (utc_day(rating), rating.unit_id)
        row = rows.setdefault(key, {"day": key[0], "unit_id": key[1]} | dict.fromkeys(COUNTS, 0))
        for column, value in _counts(rating).items():
            row[column] += value
    if not rows:
        return
    conn = await session.connection()
    stmt = _dialect_insert(conn.dialect.name).values(list(rows.values()))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(KEY), set_={c: TABLE.c[c] + stmt.excluded[c] for c in COUNTS}
    )
    await conn.execute(stmt)


def _dialect_insert(dialect: str) -> Any:
    """Return the INSERT construct that knows ON CONFLICT on this database."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(TABLE)


def _summed(name: str) -> list[ColumnElement[Any]]:
    """Return COUNT(score) and SUM(score) (0 on no score) of one element."""
    score = col(getattr(Rating, name))
    return [func.count(score), func.coalesce(func.sum(score), 0)]


async def rebuild(session: AsyncSession) -> None:
    """Count the whole table again from the ratings (after rows were loaded in bulk)."""
    overall = col(Rating.overall)
    day = func.date(col(Rating.created_at))
    columns: list[Any] = [day, col(Rating.unit_id)]
    columns += [func.sum(case((overall == level, 1), else_=0)) for level in LEVEL_COLUMNS]
    columns += [c for name in ELEMENTS for c in _summed(name)]
    counted = select(*columns).group_by(day, col(Rating.unit_id))
    conn = await session.connection()
    await conn.execute(delete(TABLE))
    await conn.execute(insert(TABLE).from_select([*KEY, *COUNTS], counted))
