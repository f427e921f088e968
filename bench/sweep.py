"""Sweeps read only what is due: a big database against one holding only the due rows.

    python -m bench.sweep [--tasks 100000] [--outbox 1000000] [--due 300] [--backends ...]

For each backend, builds two databases: a big one (N tasks assigned to units, M outbox rows of
which a few hundred are due, the rest sent long ago or due far ahead) and a small one holding
only the due rows. Times the task-ladder sweep and the outbox claim on both (each run in a
transaction that is rolled back, best of several) and prints big / small (goal: at most 3), then
the query plans, which must use ix_assignment_next and ix_outbox_due.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel

import bot.models as m
from bench.figures import Figures
from bot.config import TaskSettings
from bot.db import SessionMaker, create_engine, session_maker
from bot.messages import OutboundMessage, codec
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.tasks import tasks

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # Wednesday 08:00 in Hanoi
CHUNK = 20_000
RUNS = 5
PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"


async def _bulk(session: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows in chunks."""
    for i in range(0, len(rows), CHUNK):
        await session.execute(insert(table), rows[i : i + CHUNK])


async def build(maker: SessionMaker, *, n_tasks: int, n_outbox: int, due: int) -> None:
    """Fill a database: units with a linked head, tasks, assignments, outbox rows."""
    async with maker() as s:
        await _bulk(
            s,
            m.Unit.__table__,
            [
                {
                    "id": i,
                    "code": f"U{i}",
                    "name": f"Đơn vị {i}",
                    "kind": "school",
                    "active": True,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, 101)
            ],
        )
        await _bulk(
            s,
            m.Person.__table__,
            [
                {
                    "id": i,
                    "code": f"H{i}",
                    "full_name": f"Thủ trưởng {i}",
                    "unit_id": i,
                    "locale": "vi",
                    "active": True,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, 101)
            ],
        )
        await _bulk(
            s,
            m.PersonRole.__table__,
            [{"person_id": i, "role": "unit_head"} for i in range(1, 101)],
        )
        await _bulk(
            s,
            m.Contact.__table__,
            [
                {
                    "id": i,
                    "channel": "telegram",
                    "external_id": str(i),
                    "locale": "vi",
                    "person_id": i,
                    "opted_out": False,
                    "created_at": NOW,
                }
                for i in range(1, 101)
            ],
        )
        await _bulk(
            s,
            m.Task.__table__,
            [
                {
                    "id": i,
                    "title": f"Nhiệm vụ {i}",
                    "details": "",
                    "created_by": "bench",
                    "created_at": NOW,
                }
                for i in range(1, n_tasks + 1)
            ],
        )
        await _bulk(
            s,
            m.TaskAssignment.__table__,
            [_assignment(i, n_tasks, due) for i in range(1, n_tasks + 1)],
        )
        payload = codec.dumps(OutboundMessage("text.hint_staff"))
        await _bulk(
            s,
            m.Outbox.__table__,
            [_outbox(i, n_outbox, due, payload) for i in range(1, n_outbox + 1)],
        )
        await s.commit()


def _assignment(i: int, n: int, due: int) -> dict[str, Any]:
    """Return assignment i: the last `due` ones are due now, the rest much later or done."""
    is_due = i > n - due
    return {
        "id": i,
        "task_id": i,
        "unit_id": 1 + i % 100,
        "due_at": NOW + timedelta(days=3),
        "status": "open" if is_due or i % 2 else "done",
        "next_step_at": NOW - timedelta(minutes=5) if is_due else NOW + timedelta(days=30),
    }


def _outbox(i: int, n: int, due: int, payload: str) -> dict[str, Any]:
    """Return outbox row i: the last `due` ones pending and due, most sent, some due later."""
    is_due = i > n - due
    status = "pending" if is_due or i % 10 == 0 else "sent"
    at = (
        NOW - timedelta(minutes=1)
        if is_due
        else (NOW + timedelta(days=5) if status == "pending" else NOW - timedelta(days=i % 300))
    )
    return {
        "id": i,
        "created_at": at,
        "due_at": at,
        "status": status,
        "priority": 100,
        "kind": "bench",
        "contact_id": 1 + i % 100,
        "channel": "telegram",
        "chat_id": str(1 + i % 100),
        "is_group": False,
        "paid": False,
        "payload": payload,
        "attempts": 0,
    }


async def best_of(maker: SessionMaker, work: Callable[[Any], Awaitable[Any]]) -> float:
    """Run work in a rolled-back transaction several times; return the best time."""
    best = float("inf")
    for _ in range(RUNS):
        async with maker() as s:
            started = time.perf_counter()
            await work(s)
            best = min(best, time.perf_counter() - started)
            await s.rollback()
    return best


async def task_sweep(session: Any) -> Any:
    """One task-ladder sweep."""
    return await tasks.sweep(session, now=NOW, cal=WorkCalendar(), settings=TaskSettings())


async def outbox_claim(session: Any) -> Any:
    """One claim of due outbox rows."""
    return await outbox.claim(session, owner="bench", now=NOW, limit=500, lease_seconds=60)


async def plans(maker: SessionMaker, sqlite: bool) -> dict[str, str]:
    """Return the query plans of the two reads."""
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    now = NOW.replace(tzinfo=None).isoformat(sep=" ")
    queries = {
        "task sweep": "SELECT id FROM task_assignment WHERE status = 'open' AND "
        f"next_step_at <= '{now}' ORDER BY next_step_at LIMIT 500",
        "outbox claim": "SELECT id FROM outbox WHERE (status = 'pending' AND due_at <= "
        f"'{now}') OR (status = 'sending' AND lease_until <= '{now}') "
        "ORDER BY priority, due_at, id LIMIT 500",
    }
    out = {}
    async with maker() as s:
        for name, sql in queries.items():
            rows = (await s.execute(text(prefix + sql))).all()
            out[name] = "\n".join(" ".join(str(c) for c in r) for r in rows)
    return out


async def database(url: str) -> tuple[SessionMaker, Callable[[], Awaitable[None]]]:
    """Create an empty schema at url; return a session maker and a disposer."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    return session_maker(engine), engine.dispose


async def measure(
    name: str, urls: tuple[str, str], args: argparse.Namespace, figures: Figures
) -> None:
    """Build both databases on one backend, time both sweeps, print ratios and plans."""
    big, close_big = await database(urls[0])
    small, close_small = await database(urls[1])
    started = time.perf_counter()
    await build(big, n_tasks=args.tasks, n_outbox=args.outbox, due=args.due)
    await build(small, n_tasks=args.due, n_outbox=args.due, due=args.due)
    print(f"[{name}] built in {time.perf_counter() - started:.0f} s")
    for label, work in (("task sweep", task_sweep), ("outbox claim", outbox_claim)):
        t_big, t_small = await best_of(big, work), await best_of(small, work)
        print(
            f"[{name}] {label:12}: {t_big * 1000:7.1f} ms on {args.tasks:,} tasks / "
            f"{args.outbox:,} outbox rows vs {t_small * 1000:7.1f} ms on the due rows only"
            f" = {t_big / t_small:.2f} x (goal <= 3)"
        )
        figures.add(f"{name}.{label.replace(' ', '_')}.x_due_only", t_big / t_small, goal="<= 3")
    for label, plan in (await plans(big, name == "sqlite")).items():
        print(f"[{name}] plan of the {label}:\n    " + plan.replace("\n", "\n    "))
    await close_big()
    await close_small()


async def main(args: argparse.Namespace) -> None:
    """Run each backend asked for; print the JSON figure lines last."""
    figures = Figures("sweep")
    try:
        await run_backends(args, figures)
    finally:
        figures.print()


async def run_backends(args: argparse.Namespace, figures: Figures) -> None:
    """Measure on SQLite, then on PostgreSQL when a server is given."""
    if "sqlite" in args.backends:
        with TemporaryDirectory() as tmp:
            folder = Path(tmp)
            await measure(
                "sqlite",
                (f"sqlite+aiosqlite:///{folder}/big.db", f"sqlite+aiosqlite:///{folder}/small.db"),
                args,
                figures,
            )
    if "postgres" in args.backends:
        base = os.environ.get(PG_ENV)
        if not base:
            print(f"[postgres] skipped: set {PG_ENV}")
            return
        names = [f"reformbot_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        admin = create_engine(base)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for n in names:
                await conn.execute(text(f'CREATE DATABASE "{n}"'))
        try:
            urls = [
                make_url(base).set(database=n).render_as_string(hide_password=False) for n in names
            ]
            await measure("postgres", (urls[0], urls[1]), args, figures)
        finally:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for n in names:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)'))
            await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--outbox", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    asyncio.run(main(parser.parse_args()))
