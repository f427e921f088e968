"""Outbox dispatch throughput with flood limits off: how fast the dispatcher itself can go.

    python -m bench.throughput [--messages 5000] [--concurrency 128] [--backends sqlite postgres]
                               [--channels telegram zalo]

The sandbox runs in a child process with its flood limits off (Limits.off()), as Telegram's
servers run on machines other than the bot's, and holds one user per message: every message goes
to its own chat. The baseline, measured in the same run, is the ceiling of the sandbox and the
client on this machine: a stock python-telegram-bot Bot sends the same texts straight to the
sandbox, `concurrency` requests at a time, no database. Then the dispatcher drains the same
messages from the outbox (a SQLite file, and PostgreSQL when REFORMBOT_TEST_POSTGRES_URL is set),
with its own limits raised out of the way. Two more runs without a database: one sends as the
baseline does through Bot.do_api_request, skipping python-telegram-bot's Message objects; one
through the dispatcher's Telegram channel (what the dispatcher costs beyond it is the
difference). The messages look like a broadcast or a directive: a few payloads shared by many
rows, recipients in Vietnamese and English.

Zalo, in the same run and measured the same way: its ceiling is a bare aiohttp client posting
sendMessage (the plain texts rendered beforehand) to the sandbox's Zalo Bot API emulator,
`concurrency` at a time; then the dispatcher's "zalo" lane (its Zalo channel, limits raised out
of the way, recording the numbered list each message shows as `reformbot run` does) drains the
same messages. Its figures carry "channel": "zalo", and the Zalo-to-Telegram ratios of rate and
CPU per message are printed for each pair.

Printed: messages per second of each, the dispatcher's as a ratio to the goal of 1,500/s and
to the baseline, a check that every chat got exactly one message, and the CPU milliseconds per
message of the bot process and of the sandbox (the figure that other work on the machine
disturbs least; 1000 / it is what one free core could carry); then one JSON line per figure.
Both the baseline and the dispatcher use the aiohttp request backend the bot ships
(`--client httpx` for python-telegram-bot's default), on asyncio's own event loop as
`reformbot run` does (`--loop uvloop` runs the bench and the sandbox on uvloop, if installed:
it measured no less CPU per message here, so the bot does not ship it). `--profile PREFIX`
writes a cProfile (CPU time of the main thread) of each timed run to PREFIX-<run>.prof.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import telegram
from sqlalchemy import insert, text
from sqlalchemy.engine.url import make_url
from sqlmodel import SQLModel
from telegram.constants import ParseMode
from telegram.request import BaseRequest, HTTPXRequest

from bench import sandbox_process
from bench.figures import Figures
from bench.sandbox_process import Sandbox, Spec, close_sandbox
from bot.channels.contract import Limits as ChannelLimits
from bot.channels.http import AiohttpRequest
from bot.channels.render import html_escape, plain_text, render
from bot.channels.telegram import NO_PREVIEW, TelegramChannel, keyboard
from bot.channels.zalo import TEXT_MAX as ZALO_TEXT_MAX
from bot.channels.zalo import ZaloApi, ZaloChannel
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db import create_engine, session_maker
from bot.messages import Button, OutboundMessage, codec
from bot.models import Channel, Contact, Outbox, OutboxStatus
from bot.runtime import settle_heap
from bot.sandbox.server import DEFAULT_TOKEN
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN
from bot.zalo_app import recorder
from jobs.dispatcher import MAX_IN_FLIGHT, Dispatcher

PG_ENV = "REFORMBOT_TEST_POSTGRES_URL"
GOAL = 1500.0
FIRST_UID = 900_000
PAYLOADS = 4  # distinct messages, each shared by many rows (a broadcast, a directive's notice)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
UNLIMITED = 1e9  # the dispatcher's own pacing, raised out of the way


@dataclass(frozen=True)
class Run:
    """One measured run."""

    name: str
    messages: int
    seconds: float
    accepted: int
    chats_wrong: int
    bot_cpu: float
    sandbox_cpu: float

    @property
    def per_second(self) -> float:
        """Return messages delivered per second."""
        return self.messages / self.seconds

    @property
    def bot_ms(self) -> float:
        """Return the bot process's CPU milliseconds per message (its threads included)."""
        return 1000 * self.bot_cpu / self.messages

    @property
    def sandbox_ms(self) -> float:
        """Return the sandbox process's CPU milliseconds per message."""
        return 1000 * self.sandbox_cpu / self.messages


@dataclass
class Stopwatch:
    """Wall time and the CPU time of the bench and of the sandbox, over one timed stretch."""

    box: Sandbox
    profile_to: Path | None = None
    wall: float = 0.0
    cpu: float = 0.0
    box_cpu: float = 0.0
    profile: cProfile.Profile | None = None

    def start(self) -> None:
        """Start timing (and profiling when asked)."""
        self.box_cpu = self.box.cpu()
        if self.profile_to is not None:
            self.profile = cProfile.Profile(time.thread_time)  # CPU of this thread only
            self.profile.enable()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        """Stop timing: keep the differences."""
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        if self.profile is not None and self.profile_to is not None:
            self.profile.disable()
            self.profile.dump_stats(self.profile_to)
        self.box_cpu = self.box.cpu() - self.box_cpu


# the sandbox, in a process of its own --------------------------------------------------------


async def open_sandbox(users: int, inline: bool) -> Sandbox:
    """Start a sandbox with limits off and `users` users on Telegram and Zalo, in a child
    process unless asked otherwise."""
    spec = Spec(users, FIRST_UID, zalo=True)
    return await sandbox_process.open_sandbox(spec, inline=inline, loop=CLIENT["loop"])


def check(box: Sandbox, messages: int, channel: str = "telegram") -> tuple[int, int]:
    """Return how many messages the sandbox accepted, and how many chats got other than one."""
    counters = box.counters(channel)
    by_chat = counters["accepted_by_chat"]
    wrong = sum(1 for i in range(messages) if by_chat.get(str(FIRST_UID + i), 0) != 1)
    return int(counters["accepted_total"]), wrong


# the messages ----------------------------------------------------------------------------------


def message_of(n: int) -> OutboundMessage:
    """Return the message of the n-th row: one of a few payloads, each shared by many rows."""
    variant = n % PAYLOADS
    return OutboundMessage(
        "broadcast.message",
        {"text": f"<b>Thông báo số {variant}</b>: lịch tiếp công dân tuần này thay đổi."},
        buttons=((Button("menu.help", f"help:{variant}"),),),
    )


def locale_of(n: int) -> str:
    """Return the recipient's language: most in Vietnamese, some in English."""
    return "en" if n % 5 == 0 else "vi"


CLIENT = {"name": "aiohttp", "loop": "asyncio"}


def make_bot(box: Sandbox, concurrency: int) -> telegram.Bot:
    """Return a stock Bot for the sandbox, its pool big enough for `concurrency` requests."""
    request: BaseRequest
    if CLIENT["name"] == "httpx":
        request = HTTPXRequest(connection_pool_size=concurrency + 4, pool_timeout=30.0)
    else:
        request = AiohttpRequest(connection_pool_size=concurrency + 4, pool_timeout=30.0)
    return telegram.Bot(
        DEFAULT_TOKEN,
        base_url=box.base_url,
        base_file_url=box.file_base_url,
        request=request,
    )


# the runs --------------------------------------------------------------------------------------


async def baseline(
    messages: int, concurrency: int, inline: bool, profile_to: Path | None, *, way: str = "bot"
) -> Run:
    """Send the same texts straight at the sandbox, `concurrency` at a time, no database.

    `way` "raw" sends through Bot.do_api_request, which skips building python-telegram-bot's
    Message objects from the answers; "channel" through the dispatcher's Telegram channel (its
    bodies encoded once per message, posted straight through aiohttp): the dispatcher's sends
    without the dispatcher.
    """
    box = await open_sandbox(messages, inline)
    kinds = PAYLOADS * 5  # message_of and locale_of repeat with this period
    texts = [render(message_of(k), locale_of(k), escape=html_escape, tz=TZ) for k in range(kinds)]
    markups = [keyboard(message_of(k), locale_of(k)) for k in range(kinds)]
    queue = list(range(messages))
    queue.reverse()
    bot = make_bot(box, concurrency)
    sender = channel(bot)
    notices = [message_of(k) for k in range(kinds)]

    async def worker() -> None:
        """Send until the queue is empty."""
        while queue:
            k = queue.pop()
            if way == "channel":
                await sender.send(str(FIRST_UID + k), notices[k % kinds], locale_of(k))
                continue
            if way == "raw":
                await bot.do_api_request(
                    "sendMessage",
                    api_kwargs={
                        "chat_id": FIRST_UID + k,
                        "text": texts[k % kinds],
                        "parse_mode": ParseMode.HTML,
                        "reply_markup": markups[k % kinds],
                        "link_preview_options": NO_PREVIEW,
                    },
                )
                continue
            await bot.send_message(
                FIRST_UID + k,
                texts[k % kinds],
                parse_mode=ParseMode.HTML,
                reply_markup=markups[k % kinds],
                link_preview_options=NO_PREVIEW,
            )

    watch = Stopwatch(box, profile_to and profile_to.with_name(f"{profile_to.name}-{way}.prof"))
    async with bot:
        watch.start()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        watch.stop()
    accepted, wrong = check(box, messages)
    await close_sandbox(box)
    name = {
        "bot": "bare Bot, no database (the ceiling)",
        "raw": "bare Bot, no Message objects",
        "channel": "the dispatcher's channel, no database",
    }[way]
    return Run(name, messages, watch.wall, accepted, wrong, watch.cpu, watch.box_cpu)


async def zalo_baseline(
    messages: int, concurrency: int, inline: bool, profile_to: Path | None, *, way: str = "bare"
) -> Run:
    """The Zalo ceiling: a bare aiohttp client posts sendMessage to the sandbox's Zalo Bot API,
    `concurrency` at a time, no database (the texts rendered beforehand, the answers checked).

    `way` "channel" sends through the dispatcher's Zalo channel instead (rendering each text,
    without recording the lists shown): the lane's sends without the dispatcher.
    """
    box = await open_sandbox(messages, inline)
    kinds = PAYLOADS * 5
    texts = [plain_text(message_of(k), locale_of(k), tz=TZ) for k in range(kinds)]
    notices = [message_of(k) for k in range(kinds)]
    url = f"{box.zalo_base_url}/bot{DEFAULT_ZALO_TOKEN}/sendMessage"
    queue = list(range(messages))
    queue.reverse()
    failed: list[int] = []
    connector = aiohttp.TCPConnector(limit=concurrency + 4, limit_per_host=0)
    sender = zalo_channel(box, concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        """Send until the queue is empty."""
        while queue:
            k = queue.pop()
            if way == "channel":
                if not (await sender.send(str(FIRST_UID + k), notices[k % kinds], locale_of(k))).ok:
                    failed.append(k)
                continue
            body = {"chat_id": str(FIRST_UID + k), "text": texts[k % kinds]}
            async with session.post(url, json=body) as reply:
                answer = await reply.json()
            if not answer.get("ok"):
                failed.append(k)

    watch = Stopwatch(
        box, profile_to and profile_to.with_name(f"{profile_to.name}-zalo-{way}.prof")
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        watch.start()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        watch.stop()
    await sender.close()
    accepted, wrong = check(box, messages, "zalo")
    await close_sandbox(box)
    name = "Zalo: bare aiohttp, no database (the ceiling)"
    if way == "channel":
        name = "Zalo: the dispatcher's Zalo channel, no database"
    return Run(name, messages, watch.wall, accepted, wrong, watch.cpu, watch.box_cpu)


async def fill(maker: Any, messages: int, lane: str = Channel.TELEGRAM) -> None:
    """Write the contacts and one pending outbox row per contact, on the lane's channel."""
    now = datetime.now(UTC)
    async with maker() as session:
        contacts = [
            {
                "channel": lane,
                "external_id": str(FIRST_UID + n),
                "locale": locale_of(n),
                "created_at": now,
            }
            for n in range(messages)
        ]
        await session.exec(insert(Contact), params=contacts)
        payloads = [codec.dumps(message_of(k)) for k in range(PAYLOADS)]
        rows = [
            {
                "created_at": now,
                "due_at": now,
                "status": OutboxStatus.PENDING,
                "priority": 100,
                "kind": "broadcast",
                "ref_id": 1,
                "channel": lane,
                "chat_id": str(FIRST_UID + n),
                "contact_id": n + 1,
                "paid": False,
                "is_group": False,
                "attempts": 0,
                "payload": payloads[n % PAYLOADS],
            }
            for n in range(messages)
        ]
        await session.exec(insert(Outbox), params=rows)
        await session.commit()


def channel(bot: telegram.Bot) -> TelegramChannel:
    """Return the Telegram channel with its limits raised out of the dispatcher's way."""
    limits = ChannelLimits(overall=UNLIMITED, per_chat=UNLIMITED, per_group=UNLIMITED)
    return TelegramChannel(bot, TZ, limits)


async def dispatcher_run(
    url: str,
    name: str,
    messages: int,
    concurrency: int,
    inline: bool,
    profile_to: Path | None,
    lane: str = Channel.TELEGRAM,
) -> Run:
    """Queue the messages in the outbox, then time the dispatcher draining it on one lane."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    await fill(maker, messages, lane)
    box = await open_sandbox(messages, inline)
    bot = make_bot(box, concurrency)
    clock = SystemClock()
    sender: TelegramChannel | ZaloChannel = channel(bot)
    if lane == Channel.ZALO:
        sender = zalo_channel(box, concurrency, recorder(maker, clock))
    async with bot:
        dispatcher = Dispatcher(
            maker=maker,
            channels={lane: sender},
            settings=DeliverySettings(),
            clock=clock,
            owner="bench",
            max_in_flight=concurrency,
        )
        watch = Stopwatch(
            box, profile_to and profile_to.with_name(f"{profile_to.name}-{lane}-{name}.prof")
        )
        watch.start()
        await dispatcher.drain()
        watch.stop()
    if isinstance(sender, ZaloChannel):
        await sender.close()
    accepted, wrong = check(box, messages, lane)
    await close_sandbox(box)
    await engine.dispose()
    label = "dispatcher" if lane == Channel.TELEGRAM else "Zalo: the dispatcher's zalo lane"
    return Run(
        f"{label} on {name}", messages, watch.wall, accepted, wrong, watch.cpu, watch.box_cpu
    )


def zalo_channel(box: Sandbox, concurrency: int, on_choices: Any = None) -> ZaloChannel:
    """Return the dispatcher's Zalo channel for the sandbox, its limits raised out of the way
    and its pool as large as the ceiling's (as the lane records the numbered lists it shows)."""
    limits = ChannelLimits(
        overall=UNLIMITED, per_chat=UNLIMITED, per_group=UNLIMITED, text_max=ZALO_TEXT_MAX
    )
    api = ZaloApi(DEFAULT_ZALO_TOKEN, box.zalo_base_url, pool=concurrency + 4)
    return ZaloChannel(api, TZ, limits, on_choices=on_choices)


async def with_postgres(base: str, *args: Any, lane: str = Channel.TELEGRAM) -> Run:
    """Run the dispatcher on a throwaway PostgreSQL database."""
    db = f"reformbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        url = make_url(base).set(database=db).render_as_string(hide_password=False)
        return await dispatcher_run(url, "PostgreSQL", *args, lane=lane)
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        await admin.dispose()


async def lane_runs(
    lane: str,
    messages: int,
    concurrency: int,
    backends: Sequence[str],
    inline: bool,
    profile_to: Path | None,
) -> list[tuple[str, Run]]:
    """Time the dispatcher draining the outbox on one lane, on each backend asked for."""
    runs: list[tuple[str, Run]] = []
    args = (messages, concurrency, inline, profile_to)
    if "sqlite" in backends:
        with TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            runs.append(("sqlite", await dispatcher_run(url, "SQLite", *args, lane=lane)))
    pg = os.environ.get(PG_ENV)
    if "postgres" in backends and pg:
        runs.append(("postgres", await with_postgres(pg, *args, lane=lane)))
    return runs


def report(figures: Figures, lane: str, base: Run, runs: list[tuple[str, Run]]) -> None:
    """Print one channel's runs beside its ceiling; add their figures (with the channel)."""
    for label, run in [("baseline", base), *runs]:
        line = f"{run.name}: {run.per_second:7.1f}/s = {run.per_second / GOAL:.2f} x goal"
        if run is not base:
            line += f", {run.per_second / base.per_second:.2f} x the ceiling"
        line += f"; {run.accepted} accepted, {run.chats_wrong} chats without exactly one"
        line += f"; CPU per message: bot {run.bot_ms:.2f} ms, sandbox {run.sandbox_ms:.2f} ms"
        line += f" (one free core: {1000 / run.bot_ms:.0f}/s)"
        print(line)
        where = {"channel": lane}
        figures.add(f"{label}_bot_cpu_ms", run.bot_ms, **where)
        figures.add(f"{label}_sandbox_cpu_ms", run.sandbox_ms, **where)
        figures.add(f"{label}_one_core_per_second", 1000 / run.bot_ms, goal=">= 1500", **where)
        goal = ">= 1500" if run is not base else None
        figures.add(f"{label}_per_second", run.per_second, goal=goal, **where)
        if run is not base:
            figures.add(f"{label}_vs_goal", run.per_second / GOAL, goal=">= 1.0", **where)
            figures.add(f"{label}_vs_ceiling", run.per_second / base.per_second, **where)
            figures.add(f"{label}_chats_wrong", run.chats_wrong, goal="0", **where)


async def main(
    messages: int,
    concurrency: int,
    backends: Sequence[str],
    inline: bool,
    profile_to: Path | None,
    channels: Sequence[str] = (Channel.TELEGRAM, Channel.ZALO),
) -> None:
    """Measure each channel's ceiling, then its dispatcher lane on each backend; print ratios,
    then figures."""
    settle_heap()  # as the bot does once started (bot.app.serve): every run below gains alike
    args = (messages, concurrency, backends, inline, profile_to)
    measured: dict[str, tuple[Run, list[tuple[str, Run]]]] = {}
    if Channel.TELEGRAM in channels:
        base = await baseline(messages, concurrency, inline, profile_to)
        runs = [
            ("raw_api", await baseline(messages, concurrency, inline, profile_to, way="raw")),
            ("channel", await baseline(messages, concurrency, inline, profile_to, way="channel")),
        ]
        runs += await lane_runs(Channel.TELEGRAM, *args)
        measured[Channel.TELEGRAM] = (base, runs)
    if Channel.ZALO in channels:
        base = await zalo_baseline(messages, concurrency, inline, profile_to)
        way = await zalo_baseline(messages, concurrency, inline, profile_to, way="channel")
        runs = [("channel", way), *await lane_runs(Channel.ZALO, *args)]
        measured[Channel.ZALO] = (base, runs)
    if "postgres" in backends and not os.environ.get(PG_ENV):
        print(f"(PostgreSQL skipped: set {PG_ENV})")
    where = "on the bench's own event loop" if inline else "in its own process"
    print(
        f"{messages} messages to {messages} chats, limits off, {concurrency} requests at a time,"
        f" sandbox {where}, event loop {CLIENT['loop']}"
    )
    figures = Figures("throughput")
    for lane, (base, runs) in measured.items():
        report(figures, lane, base, runs)
    if len(measured) == 2:
        compare(figures, measured)
    figures.print()


def compare(figures: Figures, measured: dict[str, tuple[Run, list[tuple[str, Run]]]]) -> None:
    """Zalo beside Telegram in the same run: rates and CPU per message as ratios."""
    tg_base, tg_runs = measured[Channel.TELEGRAM]
    zl_base, zl_runs = measured[Channel.ZALO]
    pairs = [("baseline", tg_base, zl_base)]
    tg = dict(tg_runs)
    pairs += [(label, tg[label], run) for label, run in zl_runs if label in tg]
    for label, tg_run, zl_run in pairs:
        rate = zl_run.per_second / tg_run.per_second
        cpu = zl_run.bot_ms / tg_run.bot_ms
        print(f"zalo / telegram, {label}: {rate:.2f} x the rate, {cpu:.2f} x the bot's CPU")
        figures.add(f"{label}_zalo_vs_telegram_per_second", rate, channel="zalo")
        figures.add(f"{label}_zalo_vs_telegram_bot_cpu", cpu, channel="zalo")


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=MAX_IN_FLIGHT)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--inline-sandbox", action="store_true")
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--channels", nargs="+", choices=["telegram", "zalo"], default=["telegram", "zalo"]
    )
    args = parser.parse_args()
    CLIENT["name"], CLIENT["loop"] = args.client, args.loop
    sandbox_process.choose_loop(args.loop)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Please use 'Bot.sendMessage'")
    asyncio.run(
        main(
            args.messages,
            args.concurrency,
            args.backends,
            args.inline_sandbox,
            args.profile,
            [Channel(name) for name in args.channels],
        )
    )


if __name__ == "__main__":
    cli()
