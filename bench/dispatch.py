"""Outbox dispatch at the platform's limits, on each limiter shape, with network jitter.

    python -m bench.dispatch [--shapes bucket sliding fixed] [--cases normal paid]
                             [--backends sqlite postgres] [--jitter-ms 0-40] [--speed 1]
                             [--paid-messages 3000]

For each shape of the sandbox's flood limiter (token bucket with a burst, strict sliding
one-second window, fixed window per calendar second), with seeded network jitter, two cases:
300 messages to 300 chats at 30/s, and 3,000 to 3,000 chats as paid broadcasts at 1,000/s
(three windows of the limit: what each window costs shows).
Senders, each on a fresh sandbox of the same shape in the same run:

* python-telegram-bot's own AIORateLimiter (an ExtBot sending every message at once, the
  limiter holding them to the rate, retrying 429s): the baseline;
* the dispatcher draining the outbox on SQLite, and on PostgreSQL when
  REFORMBOT_TEST_POSTGRES_URL is set.

Printed per run: ratio to the limit (messages per second over the nominal rate; the goal is
>= 0.95), 429s met, and lost and duplicated messages (counted from what the sandbox delivered
to each chat). `--speed` scales the sandbox's rates and the senders' settings alike (0.1 makes
the paid case a 100/s one, for a machine too slow to reach 1,000/s). Then, last, one JSON line
per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from zoneinfo import ZoneInfo

import telegram
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from bench.figures import Figures
from bench.sandbox_process import Sandbox, Spec, close_sandbox, open_sandbox
from bot.channels.http import AiohttpRequest
from bot.channels.telegram import TelegramChannel, limits_of
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db import create_engine, session_maker
from bot.i18n import LOCALES, catalog
from bot.messages import OutboundMessage
from bot.models import Channel, Contact
from bot.runtime import settle_heap
from bot.sandbox import Limits
from bot.sandbox.limits import SHAPES
from bot.sandbox.server import DEFAULT_TOKEN
from bot.services.delivery import outbox
from bot.sqlite_driver import long_writes_expected
from jobs.dispatcher import MAX_IN_FLIGHT, Dispatcher

PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
FIRST_UID = 800_000
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
GOAL_RATIO = 0.95


@dataclass(frozen=True)
class Case:
    """What is sent: how many messages (one per chat), at what nominal rate, paid or not."""

    name: str
    messages: int
    rate: float
    paid: bool


CASES = {
    "normal": Case("300 at 30/s", 300, 30.0, False),
    "paid": Case("paid at 1000/s", 3000, 1000.0, True),
}


@dataclass(frozen=True)
class Run:
    """One measured run."""

    sender: str
    shape: str
    case: Case
    seconds: float
    flood: int
    lost: int
    duplicated: int
    speed: float

    @property
    def ratio(self) -> float:
        """Return the delivery rate as a share of the nominal limit."""
        delivered = self.case.messages - self.lost
        return delivered / self.seconds / (self.case.rate * self.speed)


@dataclass(frozen=True)
class Setup:
    """The sandbox's shape, its jitter, and the time scale."""

    shape: str
    jitter: tuple[float, float]
    speed: float
    seed: int = 7
    inline: bool = False  # the sandbox on the bench's event loop, sharing its core

    def limits(self) -> Limits:
        """Return the sandbox limits of this setup."""
        return Limits(
            shape=self.shape,
            speed=self.speed,
            jitter_min_ms=self.jitter[0],
            jitter_max_ms=self.jitter[1],
            jitter_seed=self.seed,
        )


def targets(case: Case) -> list[int]:
    """Return the chat of each message (one message per chat)."""
    return [FIRST_UID + i for i in range(case.messages)]


async def fresh_server(setup: Setup, case: Case) -> Sandbox:
    """Start a sandbox of the shape, with a user per message (in a process of its own)."""
    spec = Spec(case.messages, FIRST_UID, setup.limits())
    return await open_sandbox(spec, inline=setup.inline)


def tally(box: Sandbox, case: Case) -> tuple[int, int, int]:
    """Return the 429s, the lost and the duplicated messages, from the sandbox's counts."""
    counters = box.counters()
    by_chat = counters["accepted_by_chat"]
    lost = sum(1 for uid in targets(case) if by_chat.get(str(uid), 0) == 0)
    duplicated = sum(max(0, by_chat.get(str(uid), 0) - 1) for uid in targets(case))
    return int(counters["rate_limited_total"]), lost, duplicated


def request(pool: int) -> HTTPXRequest:
    """Return a plain-HTTP request object with room for parallel sends."""
    return HTTPXRequest(
        connection_pool_size=pool, pool_timeout=60.0, httpx_kwargs={"verify": False}
    )


async def ptb_run(setup: Setup, case: Case) -> Run:
    """Send every message at once through an ExtBot whose AIORateLimiter holds the rate."""
    server = await fresh_server(setup, case)
    limiter = AIORateLimiter(
        overall_max_rate=30 * setup.speed, overall_time_period=1, max_retries=20
    )
    bot = ExtBot(
        DEFAULT_TOKEN,
        base_url=server.base_url,
        base_file_url=server.file_base_url,
        request=request(MAX_IN_FLIGHT + 4),
        rate_limiter=limiter,
    )
    if case.paid:  # its paid limiter is fixed at 1,000/s: scale it with the sandbox
        from aiolimiter import AsyncLimiter

        limiter._apb_limiter = AsyncLimiter(case.rate * setup.speed, 1)

    async def send(uid: int) -> None:
        """Send one message; a message given up on counts as lost."""
        with contextlib.suppress(telegram.error.TelegramError):
            await bot.send_message(uid, f"notice {uid}", allow_paid_broadcast=case.paid or None)

    async with bot:
        started = time.perf_counter()
        await asyncio.gather(*(send(uid) for uid in targets(case)))
        elapsed = time.perf_counter() - started
    flood, lost, duplicated = tally(server, case)
    await close_sandbox(server)
    return Run(
        "ptb AIORateLimiter", setup.shape, case, elapsed, flood, lost, duplicated, setup.speed
    )


async def dispatcher_run(url: str, backend: str, setup: Setup, case: Case) -> Run:
    """Queue the messages in the outbox, then time the dispatcher draining it."""
    server = await fresh_server(setup, case)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    with long_writes_expected():  # the seed: thousands of rows in one write
        async with maker() as session:
            people = [
                Contact(channel=Channel.TELEGRAM, external_id=str(uid), created_at=now)
                for uid in targets(case)
            ]
            session.add_all(people)
            await session.flush()
            for n, person in enumerate(people):
                message = OutboundMessage("errors.unknown_unit", {"code": str(n)})
                await outbox.enqueue(
                    session, contact=person, message=message, kind="b", now=now, paid=case.paid
                )
            await session.commit()
    speed = setup.speed
    settings = DeliverySettings(
        global_rate=30 * speed,
        chat_rate=min(30.0, speed),
        paid_broadcast=case.paid,
        paid_rate=min(1000.0, 1000 * speed),
    )
    bot = telegram.Bot(
        DEFAULT_TOKEN,
        base_url=server.base_url,
        base_file_url=server.file_base_url,
        request=AiohttpRequest(connection_pool_size=MAX_IN_FLIGHT + 4, pool_timeout=60.0),
    )  # the backend the bot ships: its texts go out by the channel's direct path
    async with bot:
        dispatcher = Dispatcher(
            maker=maker,
            channels={"telegram": TelegramChannel(bot, TZ, limits_of(settings))},
            settings=settings,
            clock=SystemClock(),
            owner="bench",
        )
        started = time.perf_counter()
        await dispatcher.drain()
        elapsed = time.perf_counter() - started
    flood, lost, duplicated = tally(server, case)
    await close_sandbox(server)
    await engine.dispose()
    name = f"dispatcher {backend}"
    return Run(name, setup.shape, case, elapsed, flood, lost, duplicated, speed)


async def with_postgres(base: str, run: Callable[[str], Awaitable[Run]]) -> Run:
    """Run on a throwaway PostgreSQL database."""
    db = f"reformbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        return await run(make_url(base).set(database=db).render_as_string(hide_password=False))
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        await admin.dispose()


async def runs_of(setup: Setup, case: Case, backends: list[str], folder: Path) -> list[Run]:
    """Measure the baseline and the dispatcher on each backend for one shape and case."""
    runs = [await ptb_run(setup, case)]
    if "sqlite" in backends:
        url = f"sqlite+aiosqlite:///{folder / f'{setup.shape}-{case.paid}.db'}"
        runs.append(await dispatcher_run(url, "SQLite", setup, case))
    pg = os.environ.get(PG_ENV)
    if "postgres" in backends and pg:

        async def on_pg(url: str) -> Run:
            """Run the dispatcher on the given database."""
            return await dispatcher_run(url, "PostgreSQL", setup, case)

        runs.append(await with_postgres(pg, on_pg))
    return runs


def report(runs: list[Run], figures: Figures) -> None:
    """Print one line per run and record its figures."""
    for run in runs:
        print(
            f"{run.shape:8} {run.case.name:20} {run.sender:22} ratio {run.ratio:.3f}"
            f"  {run.flood:3} x 429  lost {run.lost}  duplicated {run.duplicated}"
            f"  ({run.seconds:.1f} s)"
        )
        where = {"shape": run.shape, "case": run.case.name, "sender": run.sender}
        goal = f">= {GOAL_RATIO}" if run.sender.startswith("dispatcher") else None
        figures.add("ratio_to_limit", run.ratio, goal, **where)
        zero = "0" if run.sender.startswith("dispatcher") else None
        figures.add("429", run.flood, zero, **where)
        figures.add("lost", run.lost, zero, **where)
        figures.add("duplicated", run.duplicated, zero, **where)


async def main(args: argparse.Namespace) -> None:
    """Measure every shape and case; print the runs, then the figures."""
    low, _, high = args.jitter_ms.partition("-")
    jitter = (float(low), float(high or low))
    figures = Figures("dispatch")
    for locale in LOCALES:  # loaded at start by the bot, which renders its command menus
        catalog(locale)
    settle_heap()  # as the bot does once started (bot.app.serve)
    if "postgres" in args.backends and not os.environ.get(PG_ENV):
        print(f"(PostgreSQL skipped: set {PG_ENV})")
    where = "on the bench's event loop" if args.inline_sandbox else "in its own process"
    print(f"jitter {jitter[0]:.0f}-{jitter[1]:.0f} ms, speed {args.speed}, sandbox {where}")
    with TemporaryDirectory() as folder:
        for shape in args.shapes:
            for name in args.cases:
                setup = Setup(shape, jitter, args.speed, inline=args.inline_sandbox)
                case = CASES[name]
                if case.paid:
                    case = replace(case, name=f"{args.paid_messages} {case.name}")
                    case = replace(case, messages=args.paid_messages)
                runs = await runs_of(setup, case, args.backends, Path(folder))
                report(runs, figures)
    figures.print()


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["normal", "paid"])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--jitter-ms", default="0-40", metavar="MIN-MAX")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--paid-messages", type=int, default=3000)
    parser.add_argument("--inline-sandbox", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
