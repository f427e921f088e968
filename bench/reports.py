"""The per-unit scoreboard counted in SQL, against the same figures counted row by row in Python.

    python -m bench.reports [--ratings 1000000] [--tasks 100000] [--directives 10000]
                            [--recipients 5] [--units 100] [--backends sqlite postgres]

For each backend (PostgreSQL when REFORMBOT_TEST_POSTGRES_URL is set), bulk-inserts 100 units,
their staff, N ratings (a tenth on dossiers, the bad ones followed up), M task assignments,
K directives each acknowledged by a few people, dossiers and apologies, spread over two months
(the report's month and the one before, which the scoreboard reads too), and counts the
ratings' day table (rating_daily) from them as migration 0015 does. Then times the
scoreboard of the later month (best of 3) and a straightforward per-row Python aggregation of
the same rows (load them, add them up unit by unit, medians with `statistics.median`), checks
both give the same figures for every unit and both periods, and prints seconds per report and
the ratio (goal: SQL >= 20x faster than Python, and under 2 s on SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel

import bot.models as m
from bench.figures import Figures as BenchFigures
from bot.config import ReportSettings
from bot.db import SessionMaker, create_engine, session_maker
from bot.services.ratings import daily
from bot.services.ratings.ratings import ELEMENTS, LEVELS
from bot.services.reports.queries import UNIT_OPEN, Span
from bot.services.reports.scoreboard import Figures, Scoreboard, Window, scoreboard

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
WINDOW = Window.month(2026, 11, HANOI)
START = WINDOW.previous().since  # the rows span both periods the scoreboard reads
SPAN_SECONDS = int((WINDOW.until - START).total_seconds())
NOW = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
CHUNK = 20_000
RUNS = 3
PEOPLE_PER_UNIT = 10
PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
GOAL_RATIO = 20.0
GOAL_SQLITE_SECONDS = 2.0


async def _bulk(session: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows in chunks."""
    conn = await session.connection()
    for i in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[i : i + CHUNK])


def _moment(rng: random.Random) -> datetime:
    """Return a random moment over the two months."""
    return START + timedelta(seconds=rng.randrange(SPAN_SECONDS))


async def build(maker: SessionMaker, args: argparse.Namespace) -> None:
    """Fill a database with the benchmark's rows (seeded: the same on every backend)."""
    rng = random.Random(11)
    units, people = args.units, args.units * PEOPLE_PER_UNIT
    async with maker() as s:
        await _bulk(
            s,
            m.Unit.__table__,
            [
                {"id": u, "code": f"U{u:03d}", "name": f"Đơn vị {u}", "kind": "school"}
                | {"active": True, "created_at": START, "updated_at": START}
                for u in range(1, units + 1)
            ],
        )
        await _bulk(
            s,
            m.Person.__table__,
            [
                {"id": p, "code": f"P{p}", "full_name": f"Cán bộ {p}", "unit_id": 1 + p % units}
                | {"locale": "vi", "active": True, "created_at": START, "updated_at": START}
                for p in range(1, people + 1)
            ],
        )
        await _directives(s, rng, args, people)
        await _tasks(s, rng, args)
        await _dossiers_and_ratings(s, rng, args)
        await daily.rebuild(s)  # the day counts ratings.save keeps, filled as migration 0015 does
        await s.commit()


async def _directives(s: Any, rng: random.Random, args: argparse.Namespace, people: int) -> None:
    """Add directives, each sent to a few people, most acknowledged within two days."""
    directives, recipients = [], []
    for d in range(1, args.directives + 1):
        at = _moment(rng)
        directives.append(
            {"id": d, "number": f"{d}/SGDĐT", "issued_on": at.date(), "title": "Công văn"}
            | {"summary": "", "audience": "everyone", "target": "all", "ack_deadline": at}
            | {"created_by": "bench", "created_at": at}
        )
        for p in rng.sample(range(1, people + 1), args.recipients):
            acked = at + timedelta(seconds=rng.randrange(172_800)) if rng.random() < 0.8 else None
            recipients.append(
                {"directive_id": d, "person_id": p, "unit_id": 1 + p % args.units}
                | {"acked_at": acked, "reminders_sent": 0}
            )
    await _bulk(s, m.Directive.__table__, directives)
    await _bulk(s, m.DirectiveRecipient.__table__, recipients)


async def _tasks(s: Any, rng: random.Random, args: argparse.Namespace) -> None:
    """Add tasks with one assignment each: done on time, done late, or open."""
    tasks, assignments = [], []
    for i in range(1, args.tasks + 1):
        due = _moment(rng)
        pick = rng.random()
        done = due - timedelta(hours=rng.randrange(1, 72)) if pick < 0.6 else None
        if 0.6 <= pick < 0.8:
            done = due + timedelta(hours=rng.randrange(1, 72))
        tasks.append({"id": i, "title": f"Nhiệm vụ {i}", "details": ""} | _created())
        assignments.append(
            {"id": i, "task_id": i, "unit_id": 1 + i % args.units, "due_at": due}
            | {"status": "done" if done else "open", "done_at": done}
        )
    await _bulk(s, m.Task.__table__, tasks)
    await _bulk(s, m.TaskAssignment.__table__, assignments)


def _created() -> dict[str, Any]:
    """Return the author columns of a task."""
    return {"created_by": "bench", "created_at": START}


async def _dossiers_and_ratings(s: Any, rng: random.Random, args: argparse.Namespace) -> None:
    """Add dossiers, ratings (a tenth on a dossier), follow-up cases of bad ones, apologies."""
    n_dossiers = max(1, args.ratings // 10)
    dossiers, apologies = [], []
    statuses = ("received", "processing", "additional", "done", "returned", "returned", "cancelled")
    for d in range(1, n_dossiers + 1):
        appointment = _moment(rng)
        received = (appointment - timedelta(days=rng.randrange(1, 15))).astimezone(HANOI).date()
        status = rng.choice(statuses)
        returned = appointment + timedelta(hours=rng.randrange(-96, 48))
        dossiers.append(
            {"id": d, "code": f"HS{d}", "unit_id": 1 + d % args.units, "citizen_name": "Ông A"}
            | {"received_on": received, "appointment_at": appointment, "status": status}
            | {"returned_at": returned if status == "returned" else None}
            | {"created_at": START, "updated_at": START}
        )
        if d % 20 == 0:
            sent = rng.random() < 0.7
            apologies.append(
                {"dossier_id": d, "unit_id": 1 + d % args.units}
                | {"original_appointment_at": appointment, "asked_at": appointment}
                | {"status": "sent" if sent else "asked", "sent_at": appointment if sent else None}
            )
    await _bulk(s, m.Dossier.__table__, dossiers)
    await _bulk(s, m.Apology.__table__, apologies)
    ratings, cases = [], []
    for r in range(1, args.ratings + 1):
        at = _moment(rng)
        overall = rng.choices(LEVELS, weights=(40, 35, 13, 8, 4))[0]
        row = {"id": r, "unit_id": 1 + r % args.units, "channel": "telegram"}
        row |= {"voter_hash": f"v{r}", "overall": overall, "created_at": at}
        row |= {"dossier_id": r if r <= n_dossiers else None}
        for name in ELEMENTS:
            row[name] = rng.randint(1, 5) if rng.random() < 0.7 else None
        ratings.append(row)
        if overall <= 2:
            due = at + timedelta(days=7)
            closed = at + timedelta(days=rng.randrange(1, 12)) if rng.random() < 0.8 else None
            cases.append(
                {"rating_id": r, "unit_id": row["unit_id"], "opened_at": at, "due_at": due}
                | {"status": "closed" if closed else "open", "closed_at": closed}
            )
    await _bulk(s, m.Rating.__table__, ratings)
    await _bulk(s, m.FollowUpCase.__table__, cases)


# The baseline: the same figures, every row loaded and added up in Python.


def _in(at: datetime | None, span: Span) -> bool:
    """Tell whether a moment falls in [since, until)."""
    return at is not None and span.since <= at < span.until


async def python_figures(session: Any, span: Span) -> tuple[dict[int, Figures], float | None]:
    """Return every unit's figures and the overall median, counted row by row in Python."""
    c: dict[int, dict[str, Any]] = defaultdict(
        lambda: (
            defaultdict(int)
            | {"levels": defaultdict(int), "ec": defaultdict(int), "es": defaultdict(int)}
        )
    )
    delays: dict[int, list[int]] = defaultdict(list)
    rows = await session.exec(select(*[m.Rating.__table__.c[n] for n in _RATING_COLUMNS]))
    bad_dossiers: set[int] = set()
    rating_dossier: dict[int, int] = {}
    for rid, unit, at, overall, dossier, *scores in rows:
        if dossier is not None:
            rating_dossier[rid] = dossier
            if overall <= 2:
                bad_dossiers.add(dossier)
        if not _in(_utc(at), span):
            continue
        u = c[unit]
        u["levels"][overall] += 1
        for name, score in zip(ELEMENTS, scores, strict=True):
            if score is not None:
                u["ec"][name] += 1
                u["es"][name] += score
    d, r = m.Directive.__table__.c, m.DirectiveRecipient.__table__.c
    issued = {i: _utc(at) for i, at in await session.exec(select(d.id, d.created_at))}
    for directive, unit, acked in await session.exec(select(r.directive_id, r.unit_id, r.acked_at)):
        at, acked = issued[directive], _utc(acked)
        if unit is None or not _in(at, span):
            continue
        c[unit]["notices"] += 1
        if acked is not None and acked < span.until:
            c[unit]["acked"] += 1
            delays[unit].append((acked - at) // timedelta(microseconds=1))
    a = m.TaskAssignment.__table__.c
    for unit, due, status, done in await session.exec(
        select(a.unit_id, a.due_at, a.status, a.done_at)
    ):
        due, done = _utc(due), _utc(done)
        if not _in(due, span):
            continue
        u, finished = c[unit], status == "done"
        u["tasks_due"] += 1
        u["tasks_counted"] += finished or due < span.as_of
        u["tasks_on_time"] += finished and done is not None and done <= due
        u["tasks_overdue"] += not finished and due < span.as_of
    f = m.FollowUpCase.__table__.c
    complained: set[int] = set()
    for rating, unit, status, opened, due, closed in await session.exec(
        select(f.rating_id, f.unit_id, f.status, f.opened_at, f.due_at, f.closed_at)
    ):
        if rating in rating_dossier:
            complained.add(rating_dossier[rating])
        if not _in(_utc(opened), span):
            continue
        c[unit]["feedback"] += 1
        closed = _utc(closed)
        c[unit]["feedback_on_time"] += (
            status == "closed" and closed is not None and closed <= _utc(due)
        )
    ap = m.Apology.__table__.c
    apologised: set[int] = set()
    for dossier, unit, status, sent in await session.exec(
        select(ap.dossier_id, ap.unit_id, ap.status, ap.sent_at)
    ):
        if status == "sent":
            apologised.add(dossier)
            if _in(_utc(sent), span):
                c[unit]["apologies_sent"] += 1
    o = m.Dossier.__table__.c
    for did, unit, received, appointment, status, returned in await session.exec(
        select(o.id, o.unit_id, o.received_on, o.appointment_at, o.status, o.returned_at)
    ):
        if status == "cancelled" or not span.first_day <= _date(received) <= span.last_day:
            continue
        appointment, returned = _utc(appointment), _utc(returned)
        late = (
            (returned is not None and returned > appointment)
            or (returned is None and status in UNIT_OPEN and appointment < span.as_of)
            or did in apologised
        )
        u = c[unit]
        u["dossiers"] += 1
        u["dossiers_late"] += late
        u["dossiers_clean"] += not late and did not in bad_dossiers and did not in complained
    figures = {unit: _python_row(u, delays.get(unit, [])) for unit, u in c.items()}
    every = [x for unit_delays in delays.values() for x in unit_delays]
    return figures, _median(every)


_RATING_COLUMNS = ("id", "unit_id", "created_at", "overall", "dossier_id", *ELEMENTS)


def _utc(value: Any) -> datetime | None:
    """Return a raw timestamp as read from the table, as aware UTC."""
    return m.UTCDateTime().process_result_value(value, None)


def _date(value: Any) -> date:
    """Return a raw date (SQLite gives text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _median(micros: list[int]) -> float | None:
    """Return the median of some microsecond delays in whole seconds, as the SQL does."""
    return float(round(statistics.median(micros) / 1_000_000)) if micros else None


def _python_row(u: dict[str, Any], delays: list[int]) -> Figures:
    """Build a unit's figures from the Python counters."""
    plain = {k: int(v) for k, v in u.items() if k not in ("levels", "ec", "es")}
    return Figures(
        **plain,
        ack_median_seconds=_median(delays),
        levels={level: u["levels"][level] for level in LEVELS},
        element_counts={n: u["ec"][n] for n in ELEMENTS},
        element_sums={n: u["es"][n] for n in ELEMENTS},
    )


async def python_board(maker: SessionMaker) -> dict[str, Any]:
    """Return the baseline's figures for the month and the one before."""
    async with maker() as s:
        current = await python_figures(s, WINDOW.span(NOW))
        previous = await python_figures(s, WINDOW.previous().span(NOW))
    return {"current": current, "previous": previous}


def same_figures(board: Scoreboard, python: dict[str, Any]) -> int:
    """Compare the two countings unit by unit; return how many units agree (raise otherwise)."""
    (now_units, now_median), (old_units, old_median) = python["current"], python["previous"]
    for row in board.rows:
        unit = row.unit.id or 0
        for got, want in (
            (row.figures, now_units.get(unit)),
            (row.previous_figures, old_units.get(unit)),
        ):
            if got != (want or Figures()):
                raise AssertionError(f"unit {row.unit.code}: SQL {got} != Python {want}")
    if (board.totals.ack_median_seconds, board.previous_totals.ack_median_seconds) != (
        now_median,
        old_median,
    ):
        raise AssertionError("the overall medians differ")
    return len(board.rows)


async def best_of(work: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    """Run work several times; return the best time and the last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = await work()
        best = min(best, time.perf_counter() - started)
    return best, result


async def measure(name: str, url: str, args: argparse.Namespace, figures: BenchFigures) -> None:
    """Build one backend's database, time both countings, check they agree, record figures."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    started = time.perf_counter()
    await build(maker, args)
    if name == "postgres":
        # What autovacuum does after a bulk insert (statistics, the visibility map that lets
        # index-only scans skip the table); the bench does not wait for it.
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    print(f"[{name}] built in {time.perf_counter() - started:.0f} s")

    async def sql() -> Scoreboard:
        """One scoreboard."""
        async with maker() as s:
            return await scoreboard(s, window=WINDOW, now=NOW, settings=ReportSettings())

    async def python() -> dict[str, Any]:
        """One baseline."""
        return await python_board(maker)

    t_sql, board = await best_of(sql, RUNS)
    t_python, baseline = await best_of(python, 1)
    units = same_figures(board, baseline)
    ratio = t_python / t_sql
    print(
        f"[{name}] scoreboard {t_sql:.3f} s, per-row Python {t_python:.3f} s = {ratio:.1f} x "
        f"(goal >= {GOAL_RATIO:.0f}); same figures for {units} units in both periods"
    )
    figures.add(f"{name}.scoreboard_seconds", t_sql, goal="< 2" if name == "sqlite" else None)
    figures.add(f"{name}.python_seconds", t_python)
    figures.add(f"{name}.x_faster_than_python", ratio, goal=">= 20")
    await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    """Run each backend asked for; print the JSON figure lines last."""
    figures = BenchFigures("reports")
    try:
        await run_backends(args, figures)
    finally:
        figures.print()


async def run_backends(args: argparse.Namespace, figures: BenchFigures) -> None:
    """Measure on SQLite, then on PostgreSQL when a server is given."""
    if "sqlite" in args.backends:
        with TemporaryDirectory() as tmp:
            await measure("sqlite", f"sqlite+aiosqlite:///{Path(tmp)}/reports.db", args, figures)
    if "postgres" in args.backends:
        base = os.environ.get(PG_ENV)
        if not base:
            print(f"[postgres] skipped: set {PG_ENV}")
            return
        name = f"reformbot_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            await measure("postgres", url, args, figures)
        finally:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--directives", type=int, default=10_000)
    parser.add_argument("--recipients", type=int, default=5)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    asyncio.run(main(parser.parse_args()))
