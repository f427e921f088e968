"""Outbox dispatch throughput with the sandbox enforcing Telegram's flood limits.

    python -m bench.dispatch [--messages 300] [--per-chat 1] [--backends sqlite postgres]

The baseline, measured in the same run, is the platform limit itself: a greedy sender (a stock
python-telegram-bot Bot, 32 requests at a time, waiting out every 429's retry_after) pushes the
same messages straight at the sandbox, which admits about 30 per second after its burst. Then
the dispatcher drains the same messages from the outbox (a SQLite file, and PostgreSQL when
REFORMBOT_TEST_POSTGRES_URL is set) with the default [delivery] settings. Printed: messages per
second of each, the dispatcher's as a ratio to the baseline and to the nominal 30/s, and the
429s each met (the dispatcher's goal: ratio near 1, no 429).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from zoneinfo import ZoneInfo

import telegram
from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel
from telegram.request import HTTPXRequest

from bot.channels.telegram import TelegramChannel, retry_seconds
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db import create_engine, session_maker
from bot.messages import OutboundMessage
from bot.models import Channel, Contact
from bot.sandbox import Limits, SandboxServer
from bot.sandbox.server import DEFAULT_TOKEN
from bot.services import outbox
from jobs.dispatcher import MAX_IN_FLIGHT, Dispatcher

PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
NOMINAL = 30.0
FIRST_UID = 800_000
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class Run:
    """One measured run."""

    name: str
    messages: int
    seconds: float
    flood: int

    @property
    def per_second(self) -> float:
        """Return messages delivered per second."""
        return self.messages / self.seconds


def make_bot(server: SandboxServer) -> telegram.Bot:
    """Return a stock Bot for the sandbox, with room for parallel requests."""
    request = HTTPXRequest(connection_pool_size=MAX_IN_FLIGHT + 4, pool_timeout=30.0)
    return telegram.Bot(
        DEFAULT_TOKEN,
        base_url=server.base_url,
        base_file_url=server.file_base_url,
        request=request,
    )


async def fresh_server(chats: int) -> SandboxServer:
    """Start a sandbox with Telegram's limits and `chats` users."""
    server = SandboxServer(limits=Limits())
    await server.start("127.0.0.1", 0)
    for i in range(chats):
        server.create_user(f"User {i}", user_id=FIRST_UID + i)
    return server


def plan(messages: int, per_chat: int) -> list[int]:
    """Return the chat of each message, in sending order."""
    chats = max(1, messages // per_chat)
    return [FIRST_UID + (i % chats) for i in range(messages)]


async def greedy(messages: int, per_chat: int) -> Run:
    """Send straight at the sandbox as fast as it admits, waiting out each 429."""
    targets = plan(messages, per_chat)
    server = await fresh_server(len(set(targets)))
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for n, chat in enumerate(targets):
        queue.put_nowait((n, chat))
    bot = make_bot(server)

    async def worker() -> None:
        while not queue.empty():
            n, chat = queue.get_nowait()
            while True:
                try:
                    await bot.send_message(chat, f"notice {n}")
                    break
                except telegram.error.RetryAfter as exc:
                    await asyncio.sleep(retry_seconds(exc))

    async with bot:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(MAX_IN_FLIGHT)))
        elapsed = time.perf_counter() - started
    flood = server.counters().rate_limited_total
    await server.stop()
    return Run("greedy sender (the platform limit)", messages, elapsed, flood)


async def dispatcher_run(url: str, name: str, messages: int, per_chat: int) -> Run:
    """Queue the messages in the outbox, then time the dispatcher draining it."""
    targets = plan(messages, per_chat)
    server = await fresh_server(len(set(targets)))
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    async with maker() as session:
        people = {
            uid: Contact(channel=Channel.TELEGRAM, external_id=str(uid), created_at=now)
            for uid in sorted(set(targets))
        }
        session.add_all(people.values())
        await session.flush()
        for n, uid in enumerate(targets):
            message = OutboundMessage("errors.unknown_unit", {"code": str(n)})
            await outbox.enqueue(session, contact=people[uid], message=message, kind="b", now=now)
        await session.commit()
    bot = make_bot(server)
    async with bot:
        dispatcher = Dispatcher(
            maker=maker,
            channels={"telegram": TelegramChannel(bot, TZ)},
            settings=DeliverySettings(),
            clock=SystemClock(),
            owner="bench",
        )
        started = time.perf_counter()
        await dispatcher.drain()
        elapsed = time.perf_counter() - started
    flood = server.counters().rate_limited_total
    delivered = server.counters().accepted_total
    await server.stop()
    await engine.dispose()
    assert delivered == messages, f"{delivered} of {messages} delivered"
    return Run(f"dispatcher on {name}", messages, elapsed, flood)


async def with_postgres(base: str, messages: int, per_chat: int) -> Run:
    """Run the dispatcher on a throwaway PostgreSQL database."""
    db = f"reformbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        url = make_url(base).set(database=db).render_as_string(hide_password=False)
        return await dispatcher_run(url, "PostgreSQL", messages, per_chat)
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        await admin.dispose()


async def main(messages: int, per_chat: int, backends: list[str]) -> None:
    """Measure the baseline, then the dispatcher on each backend; print the ratios."""
    baseline = await greedy(messages, per_chat)
    runs = []
    with TemporaryDirectory() as folder:
        if "sqlite" in backends:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            runs.append(await dispatcher_run(url, "SQLite", messages, per_chat))
    pg = os.environ.get(PG_ENV)
    if "postgres" in backends and pg:
        runs.append(await with_postgres(pg, messages, per_chat))
    elif "postgres" in backends:
        print(f"(PostgreSQL skipped: set {PG_ENV})")
    print(f"{messages} messages, {per_chat} per chat, sandbox at Telegram's limits")
    print(f"{baseline.name}: {baseline.per_second:.1f}/s, {baseline.flood} x 429")
    for run in runs:
        print(
            f"{run.name}: {run.per_second:.1f}/s = {run.per_second / baseline.per_second:.2f}"
            f" x the platform limit measured ({run.per_second / NOMINAL:.2f} x nominal 30/s),"
            f" {run.flood} x 429"
        )


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--per-chat", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    asyncio.run(main(args.messages, args.per_chat, args.backends))


if __name__ == "__main__":
    cli()
