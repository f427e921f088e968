"""The outbox on Zalo beside Telegram: the dispatcher's Zalo lane on the sandbox's Zalo Bot API.

    python -m bench.zalo_dispatch [--shapes bucket sliding fixed] [--messages 200]
                                  [--oa-messages 100] [--jitter-ms 0-40]

For each shape of the sandbox's flood limiter, in the same run: the dispatcher drains N messages
to N Zalo chats through its Zalo lane (the sandbox's Zalo limit: 20/s, burst 20; the bot set to
the same 20/s), then 300 messages to 300 Telegram chats at 30/s through its Telegram lane (the
baseline, as bench.dispatch measures it). Between them, the Official Account: the dispatcher's
"zalo_oa" lane (10/s, its token fetched from the emulator's OAuth endpoint first) sends
`--oa-messages` customer-service messages to as many followers inside the 7-day window, the
emulator's OA limit set to the same 10/s (0 skips it). All on SQLite. Printed per run: ratio to
the limit (messages per second over the nominal rate), 429s met, lost and duplicated messages
(counted from what the sandbox delivered to each chat). Then, last, one JSON line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from pydantic import SecretStr
from sqlmodel import SQLModel

from bench.dispatch import CASES, GOAL_RATIO, Run, Setup, dispatcher_run
from bench.figures import Figures
from bot.channels.zalo_oa import CHANNEL as OA_CHANNEL
from bot.channels.zalo_oa import LIMITS as OA_LIMITS
from bot.clock import SystemClock
from bot.config import DeliverySettings, Settings, ZaloOASettings, ZaloSettings
from bot.db import create_engine, session_maker
from bot.messages import OutboundMessage
from bot.models import Contact
from bot.sandbox import SandboxServer
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZALO_LIMITS, ZaloSandbox
from bot.services.delivery import outbox
from bot.zalo_app import outbox_channels
from bot.zalo_oa_app import make_channel as make_oa_channel
from jobs.dispatcher import Dispatcher

FIRST_UID = 7_200_000_000_000_000_000
ZALO_RATE = ZALO_LIMITS.global_rate


def chats(messages: int) -> list[str]:
    """Return the Zalo chat of each message (one message per chat; ids are strings)."""
    return [str(FIRST_UID + i) for i in range(messages)]


async def zalo_run(url: str, setup: Setup, messages: int) -> Run:
    """Queue the messages for Zalo chats, then time the dispatcher's Zalo lane draining them."""
    limits = replace(
        setup.limits(),
        global_rate=ZALO_LIMITS.global_rate,
        global_burst=ZALO_LIMITS.global_burst,
        chat_rate=ZALO_LIMITS.chat_rate,
        chat_burst=ZALO_LIMITS.chat_burst,
    )
    zalo = ZaloSandbox(limits=limits)
    server = SandboxServer(zalo=zalo)
    await server.start("127.0.0.1", 0)
    targets = chats(messages)
    for uid in targets:
        zalo.create_user(f"Người dùng {uid[-4:]}", user_id=uid)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    async with maker() as session:
        people = [Contact(channel="zalo", external_id=uid, created_at=now) for uid in targets]
        session.add_all(people)
        await session.flush()
        for n, person in enumerate(people):
            message = OutboundMessage("errors.unknown_unit", {"code": str(n)})
            await outbox.enqueue(session, contact=person, message=message, kind="b", now=now)
        await session.commit()
    settings = Settings(
        zalo=ZaloSettings(
            enabled=True,
            bot_token=SecretStr(DEFAULT_ZALO_TOKEN),
            api_base=server.zalo_base_url,
            rate=ZALO_RATE,
            chat_rate=ZALO_LIMITS.chat_rate,
        )
    )
    clock = SystemClock()
    channels = outbox_channels(settings, maker, clock)
    dispatcher = Dispatcher(
        maker=maker, channels=channels, settings=DeliverySettings(), clock=clock, owner="bench"
    )
    started = time.perf_counter()
    await dispatcher.drain()
    elapsed = time.perf_counter() - started
    await channels["zalo"].close()
    counters = zalo.bot.counters
    by_chat = counters.accepted_by_chat
    lost = sum(1 for uid in targets if by_chat.get(uid, 0) == 0)
    duplicated = sum(max(0, by_chat.get(uid, 0) - 1) for uid in targets)
    await server.stop()
    await engine.dispose()
    case = replace(CASES["normal"], name=f"{messages} at {ZALO_RATE:g}/s", messages=messages)
    case = replace(case, rate=ZALO_RATE)
    return Run(
        "zalo lane sqlite",
        setup.shape,
        case,
        elapsed,
        counters.rate_limited_total,
        lost,
        duplicated,
        1.0,
    )


async def oa_run(url: str, setup: Setup, messages: int) -> Run:
    """Queue the messages for OA followers, then time the dispatcher's "zalo_oa" lane draining
    them (the emulator's OA limit set to the lane's own rate, so that the ratio is to a limit
    actually enforced)."""
    rate = OA_LIMITS.overall
    limits = replace(
        setup.limits(),
        global_rate=rate,
        global_burst=int(rate),
        chat_rate=ZALO_LIMITS.chat_rate,
        chat_burst=ZALO_LIMITS.chat_burst,
    )
    zalo = ZaloSandbox(limits=limits)
    server = SandboxServer(zalo=zalo)
    await server.start("127.0.0.1", 0)
    targets = chats(messages)
    for uid in targets:
        zalo.create_user(f"Người theo dõi {uid[-4:]}", user_id=uid)
        zalo.oa_follow(uid)  # followed just now: inside the 7-day window
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    async with maker() as session:
        people = [  # they wrote to the OA just now: inside the 7-day window
            Contact(channel=OA_CHANNEL, external_id=uid, created_at=now, last_seen_at=now)
            for uid in targets
        ]
        session.add_all(people)
        await session.flush()
        for n, person in enumerate(people):
            message = OutboundMessage("errors.unknown_unit", {"code": str(n)})
            await outbox.enqueue(session, contact=person, message=message, kind="b", now=now)
        await session.commit()
    oa = zalo.oa.settings
    settings = Settings(
        zalo=ZaloSettings(
            oa=ZaloOASettings(
                enabled=True,
                app_id=oa.app_id,
                oa_id=oa.oa_id,
                secret_key=SecretStr(oa.app_secret),
                oa_secret_key=SecretStr(oa.oa_secret_key),
                refresh_token=SecretStr(zalo.oa.issue(zalo.wall())["refresh_token"]),
                api_base=server.zalo_base_url + "/oa",
                oauth_base=server.zalo_base_url + "/oauth",
            )
        )
    )
    clock = SystemClock()
    channel = make_oa_channel(settings, maker, clock)
    await channel.open()
    await channel.keeper.access_token()  # the first token, as the job runner's check gets it
    dispatcher = Dispatcher(
        maker=maker,
        channels={OA_CHANNEL: channel},
        settings=DeliverySettings(),
        clock=clock,
        owner="bench",
    )
    started = time.perf_counter()
    await dispatcher.drain()
    elapsed = time.perf_counter() - started
    await channel.close()
    counters = zalo.oa.counters
    by_chat = counters.accepted_by_chat
    lost = sum(1 for uid in targets if by_chat.get(uid, 0) == 0)
    duplicated = sum(max(0, by_chat.get(uid, 0) - 1) for uid in targets)
    await server.stop()
    await engine.dispose()
    case = replace(CASES["normal"], name=f"{messages} at {rate:g}/s", messages=messages, rate=rate)
    return Run(
        "zalo_oa lane sqlite",
        setup.shape,
        case,
        elapsed,
        counters.rate_limited_total,
        lost,
        duplicated,
        1.0,
    )


async def main(args: argparse.Namespace) -> None:
    """Measure the Zalo lane and the Telegram lane on each shape; print the figures last."""
    low, _, high = args.jitter_ms.partition("-")
    jitter = (float(low), float(high or low))
    figures = Figures("zalo_dispatch")
    with TemporaryDirectory() as folder:
        for shape in args.shapes:
            setup = Setup(shape, jitter, 1.0)
            oa = []
            if args.oa_messages:
                oa_url = f"sqlite+aiosqlite:///{Path(folder) / 'oa.db'}"
                oa.append(await oa_run(oa_url, setup, args.oa_messages))
            for run in (
                await zalo_run(
                    f"sqlite+aiosqlite:///{Path(folder) / 'z.db'}", setup, args.messages
                ),
                *oa,
                await dispatcher_run(
                    f"sqlite+aiosqlite:///{Path(folder) / 't.db'}", "sqlite", setup, CASES["normal"]
                ),
            ):
                channel = run.sender.split(" ")[0] if run.sender.startswith("zalo") else "telegram"
                print(
                    f"{shape:8} {channel:9} {run.case.name:14} ratio {run.ratio:.3f} "
                    f"429s {run.flood} lost {run.lost} duplicated {run.duplicated} "
                    f"({run.seconds:.1f} s)"
                )
                extra = {"shape": shape, "channel": channel}
                figures.add("ratio_to_limit", run.ratio, f">= {GOAL_RATIO}", **extra)
                figures.add("flood_429", run.flood, "0", **extra)
                figures.add("lost", run.lost, "0", **extra)
                figures.add("duplicated", run.duplicated, "0", **extra)
    figures.print()


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["bucket", "sliding", "fixed"])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--oa-messages", type=int, default=100, help="0: no Official Account run")
    parser.add_argument("--jitter-ms", default="0-20")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
