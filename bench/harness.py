"""Drive a python-telegram-bot Application against the sandbox and count updates per second.

Also the loop that bench/ratings.py and bench/surveys.py share: people hold conversations with
reformbot (on a fresh SQLite file, and PostgreSQL when REFORMBOT_TEST_POSTGRES_URL is set), timed
between two runs of the bare echo bot driven the same way (`compare`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine.url import make_url
from sqlmodel.sql.expression import SelectOfScalar
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot import migrate
from bot.app import build_application
from bot.config import Settings
from bot.db import SessionMaker, create_engine, session_maker
from bot.runtime import settle_heap
from bot.sandbox import Limits, SandboxServer
from bot.sandbox.server import DEFAULT_TOKEN

AnyApp = Application[Any, Any, Any, Any, Any, Any]
AppFactory = Callable[[SandboxServer], Awaitable[AnyApp]]
SECRET = "bench-secret-token-0123456789"
PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
FIRST_UID = 5_000_000
WAIT = 120.0
JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Result:
    """One measured run."""

    name: str
    mode: str
    updates: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Return updates handled per second, end to end."""
        return self.updates / self.seconds


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_app(app: AnyApp, mode: str) -> None:
    """Start the application receiving by polling or by webhook, reformbot as `reformbot run` does.

    The echo bot polls with python-telegram-bot's defaults (no pause between getUpdates calls).
    """
    assert app.updater is not None
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    if mode == "webhook" and "runtime" in app.bot_data:
        await _start_reformbot_webhook(app)
    elif "runtime" in app.bot_data:  # polling as `reformbot run` polls
        from bot.app import ALLOWED_UPDATES, POLL_INTERVAL, POLL_TIMEOUT

        await app.updater.start_polling(
            timeout=POLL_TIMEOUT, poll_interval=POLL_INTERVAL, allowed_updates=ALLOWED_UPDATES
        )
    elif mode == "webhook":
        port = free_port()
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="hook",
            webhook_url=f"http://127.0.0.1:{port}/hook",
            secret_token=SECRET,
        )
    else:
        await app.updater.start_polling(timeout=10, poll_interval=0.0)
    await app.start()


async def _start_reformbot_webhook(app: AnyApp) -> None:
    """Serve the webhook with reformbot's own server, as `reformbot run` does."""
    from pydantic import SecretStr

    from bot import webhook
    from bot.app import ALLOWED_UPDATES

    rt = app.bot_data["runtime"]
    port = free_port()
    tg = rt.settings.telegram.model_copy(
        update={
            "mode": "webhook",
            "webhook_url": f"http://127.0.0.1:{port}/hook",
            "webhook_secret": SecretStr(SECRET),
            "webhook_listen": "127.0.0.1",
            "webhook_port": port,
            "webhook_path": "hook",
        }
    )
    attempt = rt.optional.attempt
    rt.extra["webhook"] = await webhook.start(app, tg, rt.maker, rt.clock, ALLOWED_UPDATES, attempt)


async def stop_app(app: AnyApp) -> None:
    """Stop the application."""
    assert app.updater is not None
    if "runtime" in app.bot_data and "webhook" in app.bot_data["runtime"].extra:
        await app.bot_data["runtime"].extra.pop("webhook").stop()
    if app.updater.running:
        await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def measure(
    name: str, factory: AppFactory, *, mode: str, users: int, messages: int, text: str
) -> Result:
    """Have `users` users send `messages` texts each; time until every one has its reply."""
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    app = await factory(server)
    await start_app(app, mode)
    uids = [900_000 + i for i in range(users)]
    for uid in uids:
        server.create_user(f"Người dùng {uid}", user_id=uid)
    try:
        started = time.perf_counter()
        for _ in range(messages):
            for uid in uids:
                server.send_text(uid, text)
        await asyncio.gather(
            *(server.wait_for_messages(uid, messages, seconds=600) for uid in uids)
        )
        elapsed = time.perf_counter() - started
    finally:
        await stop_app(app)
        await server.stop()
    return Result(name, mode, users * messages, elapsed)


def bot_kwargs(server: SandboxServer) -> dict[str, str]:
    """Return the token and Bot API addresses of the sandbox."""
    return {
        "token": DEFAULT_TOKEN,
        "base_url": server.base_url,
        "base_file_url": server.file_base_url,
    }


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the text back."""
    assert update.message is not None
    assert update.message.text is not None
    await update.message.reply_text(update.message.text)


async def echo_app(server: SandboxServer) -> AnyApp:
    """Build the bare echo bot."""
    kw = bot_kwargs(server)
    app = (
        Application.builder()
        .token(kw["token"])
        .base_url(kw["base_url"])
        .base_file_url(kw["base_file_url"])
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


def reformbot(
    server: SandboxServer, url: str, maker: SessionMaker, *, rate_limit: bool = False
) -> AnyApp:
    """Build reformbot's Application on the sandbox (by default without the client-side limiter)."""
    kw = bot_kwargs(server)
    settings = Settings(
        telegram={
            "token": kw["token"],
            "api_base_url": kw["base_url"],
            "api_file_url": kw["base_file_url"],
        },
        database={"url": url},
    )
    return build_application(settings, maker=maker, rate_limit=rate_limit)


# conversations beside echo (bench/ratings.py, bench/surveys.py) ---------------------------


@dataclass
class Run:
    """What one bot did in one mode: updates handled, the time it took, reply latencies."""

    name: str
    mode: str
    updates: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of this process (bot, sandbox and driver; not PostgreSQL's)
    latencies: list[float] = field(default_factory=list)
    completed: int = 0  # what the people finished, as the database holds it (ratings, surveys)

    @property
    def per_second(self) -> float:
        """Return updates handled per second, end to end."""
        return self.updates / self.seconds

    @property
    def cpu_per_update(self) -> float:
        """Return this process's CPU seconds per update handled."""
        return self.cpu / self.updates

    def quantile(self, q: float) -> float:
        """Return a reply-latency quantile in seconds (q in 0..1)."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q * 100) - 1]

    def labels(self, round_: int) -> dict[str, Any]:
        """Return the labels of this run's figures."""
        database = "postgresql" if self.name.endswith("-pg") else "sqlite"
        return {"mode": self.mode, "database": database, "round": round_}


Person = Callable[[SandboxServer, int, int, Run], Awaitable[object]]  # server, uid, n, run
Measure = Callable[[str, Path, int, str | None], Awaitable[Run]]  # mode, folder, index, PG


async def exchange(
    server: SandboxServer,
    uid: int,
    act: Callable[[], object],
    seen: int,
    run: Run,
    replies: int = 1,
) -> list[JsonDict]:
    """Do one action, wait for the bot's replies to it, record the latency; return the chat."""
    started = time.perf_counter()
    act()
    messages = await server.wait_for_messages(uid, seen + replies, seconds=WAIT)
    run.latencies.append(time.perf_counter() - started)
    run.updates += 1
    return messages


def button(message: JsonDict, value: str) -> str:
    """Return the callback data of the message's flow button answering `value`."""
    rows = message["reply_markup"]["inline_keyboard"]
    return str(
        next(
            b["callback_data"]
            for row in rows
            for b in row
            if b.get("callback_data", "").endswith(f":{value}")
        )
    )


async def echo_user(server: SandboxServer, uid: int, texts: int, run: Run) -> None:
    """Send `texts` messages, each after the echo of the one before."""
    for i in range(texts):
        await exchange(server, uid, partial(server.send_text, uid, "xin chào"), i, run)


async def _admin(server_url: str, sql: str) -> None:
    """Run one statement on a PostgreSQL server outside any transaction."""
    engine = create_engine(server_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def new_database(
    folder: Path, bench: str, index: int, server: str | None
) -> tuple[str, SessionMaker]:
    """Create and migrate a new SQLite file (or PostgreSQL database); return it and its maker."""
    url = f"sqlite+aiosqlite:///{folder}/{bench}-{index}.db"
    if server is not None:
        name = f"reformbot_bench_{bench}_{uuid.uuid4().hex[:10]}"
        await _admin(server, f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)
    return url, session_maker(create_engine(url))


async def drop_database(url: str, server: str | None, maker: SessionMaker) -> None:
    """Close the bot's connections; drop the PostgreSQL database (a SQLite file goes with tmp)."""
    engine = maker.kw["bind"]
    await engine.dispose()
    if server is not None:
        await _admin(server, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def drive(app: AnyApp, mode: str, users: Callable[[], Awaitable[object]], run: Run) -> None:
    """Start the bot, run every user at once, stop the bot; note the seconds and CPU they took."""
    await start_app(app, mode)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        await users()
        run.seconds = time.perf_counter() - started
        run.cpu = time.process_time() - cpu
    finally:
        await stop_app(app)


async def converse(run: Run, factory: AppFactory, people: int, name: str, person: Person) -> None:
    """Have `people` sandbox users (named `name` and their id) each do `person` at once."""
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    try:
        app = await factory(server)
        uids = [FIRST_UID + i for i in range(people)]
        for uid in uids:
            server.create_user(f"{name} {uid}", user_id=uid)
        await drive(
            app,
            run.mode,
            lambda: asyncio.gather(*(person(server, uid, n, run) for n, uid in enumerate(uids))),
            run,
        )
    finally:
        await server.stop()


async def measure_echo(mode: str, users: int, texts: int) -> Run:
    """Run the echo bot with `users` users each sending `texts` texts, one at a time."""
    run = Run("echo", mode)

    async def user(server: SandboxServer, uid: int, n: int, run: Run) -> None:
        await echo_user(server, uid, texts, run)

    await converse(run, echo_app, users, "Người dùng", user)
    return run


async def measure_reformbot(
    mode: str,
    database: tuple[str, SessionMaker],
    pg_server: str | None,
    people: int,
    name: str,
    person: Person,
    completed: SelectOfScalar[int],
) -> Run:
    """Run reformbot on `database` with `people` people doing `person`; count `completed`.

    The database is dropped afterwards (a PostgreSQL one; a SQLite file goes with its folder).
    """
    run = Run("reformbot" if pg_server is None else "reformbot-pg", mode)
    url, maker = database

    async def app(server: SandboxServer) -> AnyApp:
        return reformbot(server, url, maker)

    try:
        await converse(run, app, people, name, person)
        async with maker() as session:
            run.completed = (await session.exec(completed)).one()
    finally:
        await drop_database(url, pg_server, maker)
    return run


def mean(first: Run, second: Run) -> Run:
    """Return the echo runs before and after reformbot's as one (the machine's load drifts)."""
    both = Run(first.name, first.mode, first.updates + second.updates)
    both.seconds = first.seconds + second.seconds
    both.cpu = first.cpu + second.cpu
    both.latencies = first.latencies + second.latencies
    return both


def postgres_server() -> str | None:
    """Return the PostgreSQL server to measure on too (asyncpg), or None."""
    url = os.environ.get(PG_ENV)
    return url.replace("postgresql://", "postgresql+asyncpg://", 1) if url else None


async def compare(
    measure: Measure,
    *,
    people: int,
    texts: int,
    modes: Sequence[str],
    repeat: int,
    what: str,
    note: Callable[[int, Run, Run], None],
    databases: Collection[str] = ("sqlite", "postgresql"),
) -> None:
    """Measure each mode (echo, reformbot on each database, echo again), `repeat` times.

    Echo's users send `texts` texts each; reformbot must have `people` things `what` (e.g.
    "ratings stored") in its database. `note` hears the round, the echo runs taken together
    and each reformbot run.
    """
    servers: list[str | None] = [None] if "sqlite" in databases else []
    if (pg := postgres_server()) is not None and "postgresql" in databases:
        servers.append(pg)
    if not servers:
        raise SystemExit(f"no database to measure on (PostgreSQL needs {PG_ENV})")
    settle_heap()  # as `reformbot run` does once started; echo, in this process too, gains alike
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for round_ in range(1, repeat + 1):
            for mode in modes:
                before = await measure_echo(mode, people, texts)
                bots = []
                for server in servers:
                    index += 1
                    bot = await measure(mode, Path(tmp), index, server)
                    if bot.completed != people:
                        raise SystemExit(f"{bot.completed} {what}, {people} expected")
                    bots.append(bot)
                after = await measure_echo(mode, people, texts)
                echo = mean(before, after)
                for bot in bots:
                    note(round_, echo, bot)
