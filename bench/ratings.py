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
from functools import partial
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from bench.figures import Figures
from bench.harness import Run, button, compare, exchange, measure_reformbot, new_database
from bot.cli.demo import RATING_COUNTER, seed
from bot.models import Rating
from bot.sandbox import SandboxServer
from bot.services.ratings.service_points import payload_for_counter

GOAL = 0.5
Answer = tuple[str, str]  # ("press", value) or ("type", text)


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


async def citizen(payload: str, server: SandboxServer, uid: int, n: int, run: Run) -> None:
    """Scan the QR code and complete the rating flow, answering each question when it comes."""
    messages = await exchange(server, uid, partial(server.send_text, uid, payload), 0, run)
    for how, value in script(n):
        last = messages[-1]
        if how == "press":
            act = partial(server.press_button, uid, last["message_id"], button(last, value))
        else:
            act = partial(server.send_text, uid, value)
        messages = await exchange(server, uid, act, len(messages), run)


async def measure_ratings(
    citizens: int, mode: str, folder: Path, index: int, pg_server: str | None = None
) -> Run:
    """Run reformbot with `citizens` citizens each completing the rating flow."""
    url, maker = await new_database(folder, "ratings", index, pg_server)
    await seed(maker, history=False)  # the demo without its past: only the bench's ratings
    person = partial(citizen, f"/start {payload_for_counter(RATING_COUNTER)}")
    counted = select(func.count()).select_from(Rating)
    return await measure_reformbot(
        mode, (url, maker), pg_server, citizens, "Công dân", person, counted
    )


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
        f"{bot.mode:8} {bot.name:12} {bot.completed} ratings in {bot.seconds:.2f} s = "
        f"{bot.completed / bot.seconds:.1f} ratings/s; updates/s = {ratio:.2f} x echo "
        f"(goal >= {GOAL}); CPU per update: echo's / reformbot's = "
        f"{echo.cpu_per_update / bot.cpu_per_update:.2f}"
    )
    return ratio


async def main(citizens: int, modes: list[str], repeat: int) -> None:
    """Measure each mode (echo, reformbot, echo again), `repeat` times; print the figures last."""
    figures = Figures("ratings")

    def note(round_: int, echo: Run, bot: Run) -> None:
        ratio = report(echo, bot)
        extra = bot.labels(round_)
        figures.add("ratings_per_second", bot.completed / bot.seconds, **extra)
        figures.add("reply_p95_seconds", bot.quantile(0.95), **extra)
        figures.add("updates_per_second_x_echo", ratio, f">= {GOAL}", **extra)
        cpu = echo.cpu_per_update / bot.cpu_per_update
        figures.add("echo_cpu_per_update_x_reformbot", cpu, **extra)

    await compare(
        partial(measure_ratings, citizens),
        people=citizens,
        texts=len(script(0)) + 1,  # about as many updates as a citizen sends
        modes=modes,
        repeat=repeat,
        what="ratings stored",
        note=note,
    )
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
