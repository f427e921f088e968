"""People waiting for a reply while a large directive goes out: one budget, replies first.

    python -m bench.replies [--recipients 2000] [--people 40] [--times 3] [--shape bucket]
                            [--jitter-ms 0-40] [--speed 1]

The real reformbot Application runs against the sandbox (polling, its job runner draining the
outbox, as `reformbot run` does) on a fresh SQLite database, with the sandbox's flood limits
(30/s overall, 1/s per chat) in the chosen shape and with network jitter. A directive notice
to `recipients` chats is queued in the outbox; once it is going out, `people` people each
send /me `times` times (waiting for each reply, then 1-3 s, as a person does). Printed:
median and p95 reply time (goals <= 2 s and <= 5 s), replies lost (no answer within 30 s;
goal 0), the directive's rate from its first notice to its last as a share of the limit
(goal >= 0.9; replies share the budget), and the 429s met. `--speed` scales the sandbox's
rates, the delivery settings and the reply goals alike. Then, last, one JSON line per figure.
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
from bot.services.delivery import outbox

FIRST_RECIPIENT = 700_000
FIRST_PERSON = 600_000
REPLY_TIMEOUT = 30.0
LIMIT = 30.0


async def queue_directive(url: str, server: SandboxServer, recipients: int) -> list[int]:
    """Create the recipients and queue one notice to each; return their chat ids."""
    chats = [FIRST_RECIPIENT + i for i in range(recipients)]
    for uid in chats:
        server.create_user(f"Cán bộ {uid}", user_id=uid)
    engine = create_engine(url)
    maker = session_maker(engine)
    now = datetime.now(UTC)
    async with maker() as session:
        people = [
            Contact(channel=Channel.TELEGRAM, external_id=str(uid), created_at=now) for uid in chats
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


async def person(server: SandboxServer, uid: int, times: int, speed: float) -> list[float | None]:
    """Send /me `times` times, each after the last reply; return each reply's wait (None: lost)."""
    waits: list[float | None] = []
    rng = random.Random(uid)
    await asyncio.sleep(rng.uniform(0, 10) / speed)
    for k in range(1, times + 1):
        started = time.perf_counter()
        server.send_text(uid, "/me")
        try:
            await server.wait_for_messages(uid, k, seconds=REPLY_TIMEOUT / speed)
            waits.append(time.perf_counter() - started)
        except TimeoutError:
            waits.append(None)
        await asyncio.sleep(rng.uniform(1, 3) / speed)
    return waits


async def delivered(server: SandboxServer, chats: list[int]) -> int:
    """Count the directive's recipients that have their notice."""
    by_chat = server.counters().accepted_by_chat
    return sum(1 for uid in chats if by_chat.get(uid, 0) >= 1)


async def run(args: argparse.Namespace) -> Figures:
    """Run one directive with people asking meanwhile; print and return the figures."""
    low, _, high = args.jitter_ms.partition("-")
    limits = Limits(
        shape=args.shape,
        speed=args.speed,
        jitter_min_ms=float(low),
        jitter_max_ms=float(high or low),
        jitter_seed=11,
    )
    server = SandboxServer(limits=limits)
    await server.start("127.0.0.1", 0)
    people = [FIRST_PERSON + i for i in range(args.people)]
    for uid in people:
        server.create_user(f"Người hỏi {uid}", user_id=uid)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'replies.db'}"
        await migrate.upgrade(url)
        chats = await queue_directive(url, server, args.recipients)
        kw = bot_kwargs(server)
        settings = Settings(
            telegram={
                "token": kw["token"],
                "api_base_url": kw["base_url"],
                "api_file_url": kw["base_file_url"],
            },
            database={"url": url},
            delivery={"global_rate": LIMIT * args.speed, "poll_seconds": 0.2},
        )
        engine = create_engine(url)
        app = build_application(settings, maker=session_maker(engine))
        stop, ready = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(serve(app, stop, ready))
        await asyncio.wait_for(ready.wait(), 60)
        await server.wait_for_messages(chats[0], 1, seconds=60)
        started = time.perf_counter()  # the directive's first notice is out: its rate from here
        going = chats[min(59, len(chats) - 1)]
        await server.wait_for_messages(going, 1, seconds=60)  # the directive is going out
        asked = await asyncio.gather(
            *(person(server, uid, args.times, args.speed) for uid in people)
        )
        deadline = started + 10 * len(chats) / (LIMIT * args.speed) + 60
        for uid in chats:
            with contextlib.suppress(TimeoutError):
                left = max(0.01, deadline - time.perf_counter())
                await server.wait_for_messages(uid, 1, seconds=left)
        elapsed = time.perf_counter() - started
        got = await delivered(server, chats)
        flood = server.counters().rate_limited_total
        stop.set()
        await serving
        await engine.dispose()
    await server.stop()
    waits = [w * args.speed for ws in asked for w in ws if w is not None]
    lost = sum(1 for ws in asked for w in ws if w is None)
    directive_ratio = (got - 1) / elapsed / (LIMIT * args.speed)
    median = statistics.median(waits) if waits else float("nan")
    p95 = sorted(waits)[max(0, int(len(waits) * 0.95) - 1)] if waits else float("nan")
    print(
        f"{args.recipients} directive notices ({args.shape}, jitter {args.jitter_ms} ms,"
        f" speed {args.speed}); {args.people} people x {args.times} /me"
    )
    asked_total = len(people) * args.times
    print(f"replies: median {median:.2f} s, p95 {p95:.2f} s, lost {lost} of {asked_total}")
    print(
        f"directive: {got} of {len(chats)} delivered in {elapsed:.1f} s ="
        f" {directive_ratio:.3f} x the limit; {flood} x 429 in all"
    )
    figures = Figures("replies")
    where = {"shape": args.shape, "recipients": args.recipients}
    figures.add("reply_median_s", median, "<= 2", **where)
    figures.add("reply_p95_s", p95, "<= 5", **where)
    figures.add("replies_lost", lost, "0", **where)
    figures.add("directive_ratio_to_limit", directive_ratio, ">= 0.9", **where)
    figures.add("directive_lost", len(chats) - got, "0", **where)
    figures.add("429", flood, None, **where)
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
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(level=logging.ERROR)
    figures = asyncio.run(run(args))
    figures.print()


if __name__ == "__main__":
    cli()
