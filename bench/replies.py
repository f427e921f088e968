"""People waiting for a reply while a large directive goes out: one budget, replies first.

    python -m bench.replies [--recipients 2000] [--people 40] [--times 3] [--shape bucket]
                            [--jitter-ms 0-40] [--speed 1] [--channels telegram zalo]

The real reformbot Application runs against the sandbox (polling, its job runner draining the
outbox, as `reformbot run` does) on a fresh SQLite database, with the sandbox's flood limits
(30/s overall, 1/s per chat) in the chosen shape and with network jitter. A directive notice
to `recipients` chats is queued in the outbox; once it is going out, `people` people each
send /me `times` times (waiting for each reply, then 1-3 s, as a person does). Printed:
median and p95 reply time (goals <= 2 s and <= 5 s), replies lost (no answer within 30 s;
goal 0), the directive's rate from its first notice to its last as a share of the limit
(goal >= 0.9; replies share the budget), and the 429s met. `--speed` scales the sandbox's
rates, the delivery settings and the reply goals alike.

Zalo runs the same way in the same process, after Telegram: the directive goes to Zalo chats on
the dispatcher's "zalo" lane against the sandbox's Zalo Bot API (20/s per bot, 1/s per chat
burst 3, the same shape and jitter), the bot polls getUpdates, and the people type /me on Zalo;
its share is of Zalo's 20/s. Then, last, one JSON line per figure, each with its "channel".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import Figures
from bench.harness import bot_kwargs
from bot import migrate
from bot.app import build_application, serve
from bot.config import Settings
from bot.db import create_engine, session_maker
from bot.messages import OutboundMessage
from bot.models import Channel, Contact
from bot.sandbox import Limits, SandboxServer
from bot.sandbox.limits import SHAPES
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZALO_LIMITS, ZaloSandbox
from bot.services.delivery import outbox

FIRST_RECIPIENT = 700_000
FIRST_PERSON = 600_000
REPLY_TIMEOUT = 30.0
LIMIT = 30.0
ZALO_LIMIT = ZALO_LIMITS.global_rate


@dataclass
class Side:
    """One channel of the sandbox as the people see it: its users, what they type and get."""

    channel: Channel
    server: SandboxServer
    limit: float

    @property
    def zalo(self) -> ZaloSandbox:
        """Return the sandbox's Zalo side."""
        assert self.server.zalo is not None
        return self.server.zalo

    def create_user(self, name: str, uid: int) -> None:
        """Create a user (and the private chat) on this channel."""
        if self.channel == Channel.ZALO:
            self.zalo.create_user(name, user_id=str(uid))
        else:
            self.server.create_user(name, user_id=uid)

    def send_text(self, uid: int, text: str) -> None:
        """Type a text to the bot."""
        if self.channel == Channel.ZALO:
            self.zalo.send_text(str(uid), text)
        else:
            self.server.send_text(uid, text)

    async def wait_for_messages(self, uid: int, count: int, seconds: float) -> None:
        """Wait until the bot has sent `count` messages to the chat."""
        if self.channel == Channel.ZALO:
            await self.zalo.wait_for_messages(str(uid), count, seconds=seconds)
        else:
            await self.server.wait_for_messages(uid, count, seconds=seconds)

    def accepted_by_chat(self, uid: int) -> int:
        """Return how many sends the sandbox accepted for the chat."""
        if self.channel == Channel.ZALO:
            return self.zalo.bot.counters.accepted_by_chat.get(str(uid), 0)
        return self.server.counters().accepted_by_chat.get(uid, 0)

    def flood(self) -> int:
        """Return the 429s the bot met on this channel."""
        if self.channel == Channel.ZALO:
            return self.zalo.bot.counters.rate_limited_total
        return self.server.counters().rate_limited_total


async def queue_directive(url: str, side: Side, recipients: int) -> list[int]:
    """Create the recipients and queue one notice to each; return their chat ids."""
    chats = [FIRST_RECIPIENT + i for i in range(recipients)]
    for uid in chats:
        side.create_user(f"Cán bộ {uid}", uid)
    engine = create_engine(url)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    async with maker() as session:
        people = [
            Contact(channel=side.channel, external_id=str(uid), created_at=now) for uid in chats
        ]
        session.add_all(people)
        await session.flush()
        for n, person in enumerate(people):
            message = OutboundMessage("errors.unknown_unit", {"code": f"CV-{n}"})
            await outbox.enqueue(
                session, contact=person, message=message, kind="directive", now=now
            )
        await session.commit()
    await engine.dispose()
    return chats


async def person(side: Side, uid: int, times: int, speed: float) -> list[float | None]:
    """Send /me `times` times, each after the last reply; return each reply's wait (None: lost)."""
    waits: list[float | None] = []
    rng = random.Random(uid)
    await asyncio.sleep(rng.uniform(0, 10) / speed)
    for k in range(1, times + 1):
        started = time.perf_counter()
        side.send_text(uid, "/me")
        try:
            await side.wait_for_messages(uid, k, seconds=REPLY_TIMEOUT / speed)
            waits.append(time.perf_counter() - started)
        except TimeoutError:
            waits.append(None)
        await asyncio.sleep(rng.uniform(1, 3) / speed)
    return waits


def open_side(args: argparse.Namespace, channel: Channel) -> Side:
    """Return the sandbox with the run's limiter shape and jitter, seen from one channel."""
    low, _, high = args.jitter_ms.partition("-")
    limits = Limits(
        shape=args.shape,
        speed=args.speed,
        jitter_min_ms=float(low),
        jitter_max_ms=float(high or low),
        jitter_seed=11,
    )
    zalo_limits = replace(
        limits,
        global_rate=ZALO_LIMITS.global_rate,
        global_burst=ZALO_LIMITS.global_burst,
        chat_rate=ZALO_LIMITS.chat_rate,
        chat_burst=ZALO_LIMITS.chat_burst,
    )
    server = SandboxServer(limits=limits, zalo=ZaloSandbox(limits=zalo_limits))
    return Side(channel, server, ZALO_LIMIT if channel == Channel.ZALO else LIMIT)


def settings_for(side: Side, url: str, speed: float) -> Settings:
    """Return the bot's settings: Telegram always (the Application needs it), Zalo when asked."""
    kw = bot_kwargs(side.server)
    zalo: dict[str, object] = {}
    if side.channel == Channel.ZALO:
        zalo = {
            "enabled": True,
            "bot_token": DEFAULT_ZALO_TOKEN,
            "api_base": side.server.zalo_base_url,
            "rate": ZALO_LIMIT * speed,
            "chat_rate": ZALO_LIMITS.chat_rate * speed,
            "poll_timeout": 5,
        }
    return Settings.model_validate(
        {
            "telegram": {
                "token": kw["token"],
                "api_base_url": kw["base_url"],
                "api_file_url": kw["base_file_url"],
            },
            "zalo": zalo,
            "database": {"url": url},
            "delivery": {"global_rate": LIMIT * speed, "poll_seconds": 0.2},
        }
    )


async def run(args: argparse.Namespace, channel: Channel, figures: Figures) -> None:
    """Run one directive on one channel with people asking meanwhile; print and add figures."""
    side = open_side(args, channel)
    await side.server.start("127.0.0.1", 0)
    people = [FIRST_PERSON + i for i in range(args.people)]
    for uid in people:
        side.create_user(f"Người hỏi {uid}", uid)
    limit = side.limit * args.speed
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'replies.db'}"
        await migrate.upgrade(url)
        chats = await queue_directive(url, side, args.recipients)
        engine = create_engine(url)
        app = build_application(settings_for(side, url, args.speed), maker=session_maker(engine))
        stop, ready = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(serve(app, stop, ready))
        await asyncio.wait_for(ready.wait(), 60)
        await side.wait_for_messages(chats[0], 1, seconds=60)
        started = time.perf_counter()  # the directive's first notice is out: its rate from here
        going = chats[min(59, len(chats) - 1)]
        await side.wait_for_messages(going, 1, seconds=60)  # the directive is going out
        asked = await asyncio.gather(*(person(side, uid, args.times, args.speed) for uid in people))
        deadline = started + 10 * len(chats) / limit + 60
        for uid in chats:
            with contextlib.suppress(TimeoutError):
                left = max(0.01, deadline - time.perf_counter())
                await side.wait_for_messages(uid, 1, seconds=left)
        elapsed = time.perf_counter() - started
        got = sum(1 for uid in chats if side.accepted_by_chat(uid) >= 1)
        flood = side.flood()
        stop.set()
        await serving
        await engine.dispose()
    await side.server.stop()
    waits = [w * args.speed for ws in asked for w in ws if w is not None]
    lost = sum(1 for ws in asked for w in ws if w is None)
    directive_ratio = (got - 1) / elapsed / limit
    median = statistics.median(waits) if waits else float("nan")
    p95 = sorted(waits)[max(0, int(len(waits) * 0.95) - 1)] if waits else float("nan")
    print(
        f"{channel}: {args.recipients} directive notices at {limit:g}/s ({args.shape}, jitter"
        f" {args.jitter_ms} ms, speed {args.speed}); {args.people} people x {args.times} /me"
    )
    asked_total = len(people) * args.times
    print(f"  replies: median {median:.2f} s, p95 {p95:.2f} s, lost {lost} of {asked_total}")
    print(
        f"  directive: {got} of {len(chats)} delivered in {elapsed:.1f} s ="
        f" {directive_ratio:.3f} x the limit; {flood} x 429 in all"
    )
    where = {"shape": args.shape, "recipients": args.recipients, "channel": str(channel)}
    figures.add("reply_median_s", median, "<= 2", **where)
    figures.add("reply_p95_s", p95, "<= 5", **where)
    figures.add("replies_lost", lost, "0", **where)
    figures.add("directive_ratio_to_limit", directive_ratio, ">= 0.9", **where)
    figures.add("directive_lost", len(chats) - got, "0", **where)
    figures.add("429", flood, None, **where)


async def run_all(args: argparse.Namespace) -> Figures:
    """Run each channel in turn, in the same process; return the figures."""
    figures = Figures("replies")
    for name in args.channels:
        await run(args, Channel(name), figures)
    return figures


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--shape", choices=SHAPES, default="bucket")
    parser.add_argument("--jitter-ms", default="0-40", metavar="MIN-MAX")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument(
        "--channels", nargs="+", choices=["telegram", "zalo"], default=["telegram", "zalo"]
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(level=logging.ERROR)
    figures = asyncio.run(run_all(args))
    figures.print()


if __name__ == "__main__":
    cli()
