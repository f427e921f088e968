"""The ratings' day table (rating_daily): kept as ratings are stored, read by the scoreboard.

The scoreboard reads whole UTC days from rating_daily and the part-days at a period's ends
from the ratings; these tests hold it to the same figures as a count of the rows themselves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, inspect, text
from sqlmodel import SQLModel, select

from bot import migrate
from bot.config import ReportSettings
from bot.db import SessionMaker, create_engine, session_maker
from bot.models import Contact, Rating, RatingDaily, Unit
from bot.services.ratings import daily, ratings
from bot.services.reports import queries
from bot.services.reports.scoreboard import Figures, Window, scoreboard
from tests import factories as f

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
ZONES = (HANOI, ZoneInfo("UTC"), ZoneInfo("America/St_Johns"), ZoneInfo("Europe/Berlin"))
BASE = datetime(2026, 10, 30, tzinfo=UTC)  # the drawn moments: five days around 1 November
SPAN = 5 * 86_400
NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def local(*parts: int) -> datetime:
    """Return a Hanoi wall-clock time as UTC."""
    return datetime(*parts, tzinfo=HANOI).astimezone(UTC)


def rating(unit_id: int, at: datetime, overall: int, **scores: int | None) -> Rating:
    """Return an unsaved rating."""
    return Rating(
        unit_id=unit_id,
        channel="telegram",
        voter_hash="v",
        overall=overall,
        created_at=at,
        **scores,
    )


async def store(session: Any, rows: list[Rating]) -> None:
    """Add ratings and their day counts, as ratings.save does (in one transaction)."""
    session.add_all(rows)
    await session.flush()
    await daily.add(session, rows)


def python_counts(rows: list[Rating], since: datetime, until: datetime) -> Figures:
    """Count the ratings of [since, until) row by row: levels, element counts and sums."""
    kept = [r for r in rows if since <= r.created_at < until]
    levels = Counter(r.overall for r in kept)
    return Figures(
        levels={level: levels[level] for level in ratings.LEVELS},
        element_counts={n: sum(getattr(r, n) is not None for r in kept) for n in ratings.ELEMENTS},
        element_sums={n: sum(getattr(r, n) or 0 for r in kept) for n in ratings.ELEMENTS},
    )


def rating_part(figures: Figures) -> tuple[Any, ...]:
    """Return the figures that come from the ratings."""
    return (figures.levels, figures.element_counts, figures.element_sums)


async def units(maker: SessionMaker, codes: str = "ABC") -> list[int]:
    """Return the units' ids, adding them the first time."""
    async with maker() as s:
        found = list((await s.exec(select(Unit).order_by(Unit.code))).all())
        if not found:
            found = [await f.unit(s, code) for code in codes]
            await s.commit()
        return [u.id for u in found if u.id is not None]


async def table(maker: SessionMaker) -> dict[tuple[date, int], tuple[int, ...]]:
    """Return rating_daily's rows: the counts by (day, unit)."""
    async with maker() as s:
        rows = (await s.exec(select(RatingDaily))).all()
    return {(r.day, r.unit_id): tuple(getattr(r, c) for c in daily.COUNTS) for r in rows}


def expected_table(rows: list[Rating]) -> dict[tuple[date, int], tuple[int, ...]]:
    """Return what rating_daily should hold for some ratings, counted in Python."""
    out: dict[tuple[date, int], list[int]] = {}
    for r in rows:
        counts = out.setdefault((r.created_at.astimezone(UTC).date(), r.unit_id), [0] * 15)
        counts[r.overall - 1] += 1
        for i, name in enumerate(ratings.ELEMENTS):
            score = getattr(r, name)
            counts[5 + 2 * i] += score is not None
            counts[6 + 2 * i] += score or 0
    return {k: tuple(v) for k, v in out.items()}


def test_the_table_names_the_levels_and_elements_of_a_rating():
    assert daily.ELEMENTS == ratings.ELEMENTS
    assert sorted(daily.LEVEL_COLUMNS) == sorted(ratings.LEVELS)
    assert len(daily.COUNTS) == 15


# Drawn data: moments anywhere in five days, or a second either side of a midnight (UTC,
# Hanoi's, St John's at -3:30), so part-days and whole days both occur.
EDGES = [
    BASE + timedelta(days=d, hours=h, seconds=s)
    for d in range(5)
    for h in (0, 17, 3.5)
    for s in (-1, 0, 1)
]
moments = st.one_of(
    st.integers(0, SPAN - 1).map(lambda s: BASE + timedelta(seconds=s)),
    st.sampled_from(EDGES).filter(lambda at: BASE <= at < BASE + timedelta(seconds=SPAN)),
)
scores = st.one_of(st.none(), st.integers(1, 5))
drawn_ratings = st.lists(
    st.tuples(
        st.integers(0, 2), moments, st.integers(1, 5), st.lists(scores, min_size=5, max_size=5)
    ),
    max_size=40,
)
windows = st.one_of(
    st.builds(
        lambda first, length, tz: Window.days(first, first + timedelta(days=length), tz),
        st.dates(date(2026, 10, 29), date(2026, 11, 4)),
        st.integers(0, 3),
        st.sampled_from(ZONES),
    ),
    st.builds(
        lambda a, b, tz: Window(min(a, b), max(a, b), tz),
        moments,
        moments,
        st.sampled_from(ZONES),
    ),
)


@SETTINGS
@given(drawn=drawn_ratings, window=windows)
async def test_the_scoreboard_counts_ratings_as_the_rows_do(maker, drawn, window):
    ids = await units(maker)
    rows = [
        rating(ids[u], at, overall, **dict(zip(ratings.ELEMENTS, picked, strict=True)))
        for u, at, overall, picked in drawn
    ]
    async with maker() as s:
        await (await s.connection()).execute(delete(daily.TABLE))
        await (await s.connection()).execute(delete(Rating.__table__))  # type: ignore[arg-type]
        await store(s, rows[: len(rows) // 2])
        await s.commit()
    async with maker() as s:  # a second transaction adds to the same days
        await store(s, rows[len(rows) // 2 :])
        await s.commit()
    assert await table(maker) == expected_table(rows)
    async with maker() as s:
        board = await scoreboard(s, window=window, now=NOW, settings=ReportSettings())
        span = window.span(NOW)
        from_rows = await queries._grouped(s, queries._raw_ratings(ids, span.since, span.until))
    before = window.previous()
    for unit_id in ids:
        row = board.row_for(unit_id)
        assert row is not None
        want = python_counts([r for r in rows if r.unit_id == unit_id], window.since, window.until)
        assert rating_part(row.figures) == rating_part(want)
        old = python_counts([r for r in rows if r.unit_id == unit_id], before.since, before.until)
        assert rating_part(row.previous_figures) == rating_part(old)
        assert tuple(int(v) for v in from_rows.get(unit_id, (0,) * 15)) == (
            *(want.levels[level] for level in sorted(ratings.LEVELS)),
            *(x for n in ratings.ELEMENTS for x in (want.element_counts[n], want.element_sums[n])),
        )
    assert rating_part(board.totals) == rating_part(python_counts(rows, window.since, window.until))


async def test_a_day_boundary_in_the_agencys_time_zone(maker):
    [a] = await units(maker, "A")
    rows = [
        rating(a, local(2026, 11, 30, 23, 59, 59), 5, access=4),  # the last second of November
        rating(a, local(2026, 12, 1, 0, 0), 1, access=2),  # the first of December, same UTC day
        rating(a, local(2026, 12, 1, 6, 59, 59), 2),  # the UTC day ends at 07:00 in Hanoi
        rating(a, local(2026, 12, 1, 7, 0), 3),
        rating(a, local(2026, 11, 15, 12, 0), 4),  # a whole day inside November
    ]
    async with maker() as s:
        await store(s, rows)
        await s.commit()
    assert sorted(await table(maker)) == [
        (date(2026, 11, 15), a),
        (date(2026, 11, 30), a),
        (date(2026, 12, 1), a),
    ]

    async def levels(window: Window) -> dict[int, int]:
        async with maker() as s:
            board = await scoreboard(s, window=window, now=NOW, settings=ReportSettings())
        row = board.row_for(a)
        assert row is not None
        return {k: v for k, v in row.figures.levels.items() if v}

    assert await levels(Window.month(2026, 11, HANOI)) == {5: 1, 4: 1}
    assert await levels(Window.days(date(2026, 12, 1), date(2026, 12, 1), HANOI)) == {
        1: 1,
        2: 1,
        3: 1,
    }
    assert await levels(Window.days(date(2026, 11, 30), date(2026, 11, 30), HANOI)) == {5: 1}
    utc_day = Window.days(date(2026, 11, 30), date(2026, 11, 30), ZoneInfo("UTC"))
    assert await levels(utc_day) == {5: 1, 1: 1, 2: 1}


async def _saved(maker: SessionMaker, contact_id: int, unit_id: int, at: datetime, level: int):
    """Store one rating through ratings.save and commit."""
    async with maker() as s:
        contact = await s.get(Contact, contact_id)
        draft = ratings.Draft(unit_id=unit_id, overall=level, scores={"access": level})
        await ratings.save(s, draft=draft, contact=contact, now=at)
        await s.commit()


@pytest.fixture
async def two_processes(db_url, tmp_path):
    """Two engines on one database file or server (as two bot processes), schema made."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}" if db_url.startswith("sqlite") else db_url
    first, second = create_engine(url), create_engine(url)
    async with first.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_maker(first), session_maker(second)
    await first.dispose()
    await second.dispose()


async def test_ratings_stored_at_once_by_two_processes_are_all_counted(two_processes):
    one, two = two_processes
    async with one() as s:
        unit = await f.unit(s, "A")
        contacts = [(await f.contact(s, str(9000 + i))).id for i in range(2)]
        await ratings.salt(s)
        await s.commit()
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)

    # One transaction holds its day's row while the other stores a rating of the same day.
    async with one() as s:
        contact = await s.get(Contact, contacts[0])
        draft = ratings.Draft(unit_id=unit.id, overall=5, scores={"access": 5})
        await ratings.save(s, draft=draft, contact=contact, now=at)
        other = asyncio.create_task(_saved(two, contacts[1], unit.id, at, 4))
        await asyncio.sleep(0)  # let the other start; it waits for this one's commit
        await s.commit()
    await other

    # Then many at once, from both processes.
    levels = [1 + i % 5 for i in range(20)]
    await asyncio.gather(
        *(
            _saved((one, two)[i % 2], contacts[i % 2], unit.id, at + timedelta(minutes=i), level)
            for i, level in enumerate(levels)
        )
    )
    async with one() as s:
        [row] = (await s.exec(select(RatingDaily))).all()
        stored = list((await s.exec(select(Rating))).all())
    assert len(stored) == 22
    want = Counter([5, 4, *levels])
    assert [getattr(row, f"level_{n}") for n in range(1, 6)] == [want[n] for n in range(1, 6)]
    assert (row.access_count, row.access_sum) == (22, sum(r.access or 0 for r in stored))
    assert await table(one) == expected_table(stored)


async def _fresh_url(db_url: str, tmp_path) -> str:
    """Return an empty database of the backend under test."""
    if db_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/migrated.db"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await engine.dispose()
    return db_url


async def test_the_migration_counts_the_ratings_already_stored(db_url, tmp_path):
    url = await _fresh_url(db_url, tmp_path)
    await migrate.upgrade(url, "0013_report_indexes")
    engine = create_engine(url)
    at = datetime(2026, 11, 1)
    async with engine.begin() as conn:
        for code in "AB":
            await conn.execute(
                text(
                    "INSERT INTO unit (code, name, kind, active, created_at, updated_at)"
                    " VALUES (:code, :code, 'office', true, :at, :at)"
                ),
                {"code": code, "at": at},
            )
        ids = [i for (i,) in (await conn.execute(text("SELECT id FROM unit ORDER BY code")))]
    rows = [
        rating(
            ids[i % 2],
            BASE + timedelta(hours=7 * i, microseconds=i),
            1 + i % 5,
            access=i % 6 or None,
        )
        for i in range(30)
    ]
    async with engine.begin() as conn:
        for r in rows:
            await conn.execute(
                Rating.__table__.insert(),  # type: ignore[attr-defined]
                {
                    "unit_id": r.unit_id,
                    "channel": "telegram",
                    "voter_hash": "v",
                    "overall": r.overall,
                    "access": r.access,
                    "created_at": r.created_at,
                },
            )
    await migrate.upgrade(url)
    maker = session_maker(engine)
    assert await table(maker) == expected_table(rows)
    window = Window.days(date(2026, 10, 30), date(2026, 11, 4), HANOI)
    async with maker() as s:
        board = await scoreboard(s, window=window, now=NOW, settings=ReportSettings())
    for unit_id in ids:
        row = board.row_for(unit_id)
        assert row is not None
        mine = [r for r in rows if r.unit_id == unit_id]
        assert rating_part(row.figures) == rating_part(
            python_counts(mine, window.since, window.until)
        )
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(url), "0013_report_indexes")
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    await engine.dispose()
    assert "rating_daily" not in names
