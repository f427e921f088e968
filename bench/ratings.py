"""200 citizens rate a service point at once through the sandbox, beside the bare echo bot.

    python -m bench.ratings [--citizens 200] [--modes polling webhook] [--repeat 1]

With REFORMBOT_TEST_POSTGRES_URL set (a server where it may create and drop a database),
reformbot runs on PostgreSQL too, in the same round, against the same echo measurements.

Every citizen scans the demo seed's counter QR code (`/start <payload>`), then answers each step
of the rating flow as people do: pressing a button, or typing its number, "bỏ qua", a name, a
comment or a phone number; each waits for the bot's reply before the next answer. Reformbot runs
as shipped (its Application, on a fresh SQLite file seeded like `reformbot demo`), by polling
and by webhook (its own webhook server). Both bots run on the standard asyncio event loop,
as `reformbot run` does.

Prints per mode: ratings stored per second, the p50/p95 reply latency (from the moment the
citizen's message or press enters the sandbox's user API to the moment the bot's reply is in the
chat), and updates per second as a ratio to a bare python-telegram-bot echo bot driven the same
way in the same run (as many users, each sending as many texts, each waiting for the echo),
measured just before and just after reformbot and taken together, as the machine's load drifts.
Also the process's CPU time per update, echo's over reformbot's: on a shared machine it moves
less with the load than the rates do (PostgreSQL's own CPU is not in it).

The sandbox runs with its flood limits off and reformbot without python-telegram-bot's
client-side rate limiter, so the ratio measures reformbot's own cost per update; as shipped,
replies are paced at the platform's 30 messages/s. The bot, the sandbox and this driver share one
event loop and the machine's cores: read the ratio, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.engine.url import make_url
from sqlmodel import select

from bench.echo_baseline import echo_app
from bench.figures import Figures
from bench.harness import AnyApp, bot_kwargs, start_app, stop_app
from bot import migrate
from bot.app import build_application
from bot.cli.demo import RATING_COUNTER, seed
from bot.config import Settings
from bot.db import SessionMaker, create_engine, session_maker
from bot.models import Rating
from bot.sandbox import Limits, SandboxServer
from bot.services.ratings.service_points import payload_for_counter

GOAL = 0.5
PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
FIRST_UID = 5_000_000
WAIT = 120.0
JsonDict = dict[str, Any]
Answer = tuple[str, str]  # ("press", value) or ("type", text)


@dataclass
class Run:
    """What one bot did in one mode: updates handled, the time it took, reply latencies."""

    name: str
    mode: str
    updates: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of this process (bot, sandbox and driver; not PostgreSQL's)
    latencies: list[float] = field(default_factory=list)
    ratings: int = 0

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


def script(n: int) -> list[Answer]:
    """Return citizen n's answers after the deep link: buttons and typed words, varied."""
    level = 1 + n % 5
    answers: list[Answer] = [
        ("press", "skip") if n % 2 else ("type", "không"),  # no dossier code at hand
        ("press", f"lv{level}") if n % 3 else ("type", str(level)),
    ]
    for k in range(5):  # the five SIPAS elements: some pressed, some typed, some skipped
        pick = (n + k) % 4
        answers.append(
            ("press", f"lv{1 + (n + k) % 5}")
            if pick == 0
            else ("type", str(1 + (n + k) % 5))
            if pick == 1
            else ("type", "bỏ qua")
            if pick == 2
            else ("press", "skip")
        )
    answers.append(("type", "Chị Lan, quầy 1") if n % 3 == 0 else ("press", "skip"))
    answers.append(("type", "Hướng dẫn tận tình, nhưng chờ lâu") if n % 2 else ("press", "skip"))
    if n % 4 == 0:
        answers += [("press", "phone"), ("type", f"09{n:08d}")]
    else:
        answers.append(("press", "anonymous"))
    return answers


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


async def exchange(
    server: SandboxServer, uid: int, act: Callable[[], object], seen: int, run: Run
) -> list[JsonDict]:
    """Do one user action, wait for the bot's next message, record the latency; return the chat."""
    started = time.perf_counter()
    act()
    messages = await server.wait_for_messages(uid, seen + 1, seconds=WAIT)
    run.latencies.append(time.perf_counter() - started)
    run.updates += 1
    return messages


async def citizen(server: SandboxServer, uid: int, n: int, payload: str, run: Run) -> None:
    """Scan the QR code and complete the rating flow, answering each question when it comes."""
    messages = await exchange(server, uid, partial(server.send_text, uid, payload), 0, run)
    for how, value in script(n):
        last = messages[-1]
        if how == "press":
            act = partial(server.press_button, uid, last["message_id"], button(last, value))
        else:
            act = partial(server.send_text, uid, value)
        messages = await exchange(server, uid, act, len(messages), run)


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


async def fresh_database(folder: Path, index: int, server: str | None) -> tuple[str, SessionMaker]:
    """Create, migrate and seed (the demo without its past) a new SQLite file or PG database."""
    url = f"sqlite+aiosqlite:///{folder}/ratings-{index}.db"
    if server is not None:
        name = f"reformbot_bench_{uuid.uuid4().hex[:10]}"
        await _admin(server, f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)
    maker = session_maker(create_engine(url))
    await seed(maker, history=False)  # the demo without its past: only the bench's ratings
    return url, maker


async def drop_database(url: str, server: str | None, maker: SessionMaker) -> None:
    """Close the bot's connections; drop the PostgreSQL database (a SQLite file goes with tmp)."""
    engine = maker.kw["bind"]
    await engine.dispose()
    if server is not None:
        await _admin(server, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def reformbot(server: SandboxServer, url: str, maker: SessionMaker) -> AnyApp:
    """Build reformbot's Application on the sandbox, without the client-side rate limiter."""
    kw = bot_kwargs(server)
    settings = Settings(
        telegram={
            "token": kw["token"],
            "api_base_url": kw["base_url"],
            "api_file_url": kw["base_file_url"],
        },
        database={"url": url},
    )
    return build_application(settings, maker=maker, rate_limit=False)


async def drive(
    app: AnyApp,
    server: SandboxServer,
    mode: str,
    users: Callable[[], Awaitable[object]],
    run: Run,
) -> None:
    """Start the bot, run every user at once, stop the bot; note the seconds and CPU they took."""
    await start_app(app, mode)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        await users()
        run.seconds = time.perf_counter() - started
        run.cpu = time.process_time() - cpu
    finally:
        await stop_app(app)


async def measure_echo(mode: str, users: int, texts: int) -> Run:
    """Run the echo bot with `users` users each sending `texts` texts, one at a time."""
    run = Run("echo", mode)
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    try:
        app = await echo_app(server)
        uids = [FIRST_UID + i for i in range(users)]
        for uid in uids:
            server.create_user(f"Người dùng {uid}", user_id=uid)
        await drive(
            app,
            server,
            mode,
            lambda: asyncio.gather(*(echo_user(server, uid, texts, run) for uid in uids)),
            run,
        )
    finally:
        await server.stop()
    return run


async def measure_ratings(
    mode: str, citizens: int, folder: Path, index: int, pg_server: str | None = None
) -> Run:
    """Run reformbot with `citizens` citizens each completing the rating flow."""
    run = Run("reformbot" if pg_server is None else "reformbot-pg", mode)
    url, maker = await fresh_database(folder, index, pg_server)
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    try:
        app = reformbot(server, url, maker)
        payload = f"/start {payload_for_counter(RATING_COUNTER)}"
        uids = [FIRST_UID + i for i in range(citizens)]
        for uid in uids:
            server.create_user(f"Công dân {uid}", user_id=uid)
        await drive(
            app,
            server,
            mode,
            lambda: asyncio.gather(
                *(citizen(server, uid, n, payload, run) for n, uid in enumerate(uids))
            ),
            run,
        )
        async with maker() as session:
            run.ratings = (await session.exec(select(func.count()).select_from(Rating))).one()
    finally:
        await server.stop()
        await drop_database(url, pg_server, maker)
    return run


def mean(first: Run, second: Run) -> Run:
    """Return the echo runs before and after reformbot's as one (the machine's load drifts)."""
    both = Run(first.name, first.mode, first.updates + second.updates)
    both.seconds = first.seconds + second.seconds
    both.cpu = first.cpu + second.cpu
    both.latencies = first.latencies + second.latencies
    return both


def report(echo: Run, bot: Run) -> float:
    """Print one mode's figures; return reformbot's updates per second as a ratio to the echo."""
    ratio = bot.per_second / echo.per_second
    for run in (echo, bot):
        print(
            f"{run.mode:8} {run.name:10} {run.updates:5} updates in {run.seconds:6.2f} s "
            f"= {run.per_second:6.0f} updates/s; reply p50 {run.quantile(0.5) * 1000:6.0f} ms, "
            f"p95 {run.quantile(0.95) * 1000:6.0f} ms; "
            f"CPU {run.cpu_per_update * 1000:.2f} ms/update"
        )
    print(
        f"{bot.mode:8} {bot.name:12} {bot.ratings} ratings in {bot.seconds:.2f} s = "
        f"{bot.ratings / bot.seconds:.1f} ratings/s; updates/s = {ratio:.2f} x echo "
        f"(goal >= {GOAL}); CPU per update: echo's / reformbot's = "
        f"{echo.cpu_per_update / bot.cpu_per_update:.2f}"
    )
    return ratio


def postgres_server() -> str | None:
    """Return the PostgreSQL server to measure on too (asyncpg), or None."""
    url = os.environ.get(PG_ENV)
    return url.replace("postgresql://", "postgresql+asyncpg://", 1) if url else None


async def main(citizens: int, modes: list[str], repeat: int) -> None:
    """Measure each mode (echo, reformbot, echo again), `repeat` times; print the figures last."""
    figures = Figures("ratings")
    servers: list[str | None] = [None]
    if (pg := postgres_server()) is not None:
        servers.append(pg)
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for round_ in range(1, repeat + 1):
            for mode in modes:
                texts = len(script(0)) + 1  # about as many updates as a citizen sends
                before = await measure_echo(mode, citizens, texts)
                bots = []
                for server in servers:
                    index += 1
                    bot = await measure_ratings(mode, citizens, Path(tmp), index, server)
                    if bot.ratings != citizens:
                        raise SystemExit(f"{bot.ratings} ratings stored, {citizens} expected")
                    bots.append(bot)
                after = await measure_echo(mode, citizens, texts)
                echo = mean(before, after)
                for bot in bots:
                    ratio = report(echo, bot)
                    extra: dict[str, Any] = {
                        "mode": mode,
                        "database": "postgresql" if bot.name.endswith("-pg") else "sqlite",
                        "round": round_,
                    }
                    figures.add("ratings_per_second", bot.ratings / bot.seconds, **extra)
                    figures.add("reply_p95_seconds", bot.quantile(0.95), **extra)
                    figures.add("updates_per_second_x_echo", ratio, f">= {GOAL}", **extra)
                    cpu = echo.cpu_per_update / bot.cpu_per_update
                    figures.add("echo_cpu_per_update_x_reformbot", cpu, **extra)
    figures.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument(
        "--modes", nargs="+", default=["polling", "webhook"], choices=["polling", "webhook"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure every mode this often")
    args = parser.parse_args()
    asyncio.run(main(args.citizens, args.modes, args.repeat))
