"""Baseline: a bare python-telegram-bot echo bot against the sandbox, and reformbot beside it.

    python -m bench.echo_baseline [--users 20] [--messages 25] [--modes polling webhook]

Prints end-to-end updates per second of the echo bot in each mode, then reformbot's (the real
Application on SQLite, answering plain text) as a ratio to that baseline, measured in this run:
once without python-telegram-bot's client-side rate limiter (the cost of reformbot's own work)
and once as shipped, where the limiter holds replies to Telegram's 30 messages/s overall.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from pathlib import Path

from bench.figures import Figures
from bench.harness import AnyApp, AppFactory, Result, echo_app, measure, reformbot
from bot import migrate
from bot.db import create_engine, session_maker
from bot.sandbox import SandboxServer

DATABASES = itertools.count()  # every run its own database: a reused one has seen its update ids


def reformbot_factory(folder: Path, *, rate_limit: bool) -> AppFactory:
    """Return a factory of reformbot Applications, each on a fresh SQLite database."""

    async def factory(server: SandboxServer) -> AnyApp:
        url = f"sqlite+aiosqlite:///{folder}/bench-{next(DATABASES)}.db"
        await migrate.upgrade(url)
        return reformbot(server, url, session_maker(create_engine(url)), rate_limit=rate_limit)

    return factory


def report(baseline: Result, others: list[Result], figures: Figures) -> None:
    """Print one mode's figures, each as a ratio to the baseline, and keep them for JSON."""
    figures.add(f"{baseline.mode}.echo_updates_per_second", baseline.per_second)
    print(
        f"{baseline.mode:8} {baseline.name:28} {baseline.updates} updates in "
        f"{baseline.seconds:6.2f} s = {baseline.per_second:6.0f} updates/s"
    )
    for other in others:
        ratio = other.per_second / baseline.per_second
        print(
            f"{other.mode:8} {other.name:28} {other.updates} updates in {other.seconds:6.2f} s "
            f"= {other.per_second:6.0f} updates/s = {ratio:.2f} x baseline"
        )
        figures.add(f"{other.mode}.{other.name}.x_echo", ratio)


async def main(users: int, messages: int, modes: list[str], with_reformbot: bool) -> None:
    """Measure each mode, baseline first; print the JSON figure lines last."""
    figures = Figures("echo_baseline")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            baseline = await measure(
                "echo", echo_app, mode=mode, users=users, messages=messages, text="xin chào"
            )
            others = []
            if with_reformbot:
                for name, limited in (
                    ("reformbot (no client limiter)", False),
                    ("reformbot (as shipped)", True),
                ):
                    factory = reformbot_factory(Path(tmp), rate_limit=limited)
                    others.append(
                        await measure(
                            name,
                            factory,
                            mode=mode,
                            users=users,
                            messages=messages,
                            text="xin chào",
                        )
                    )
            report(baseline, others, figures)
    figures.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=25)
    parser.add_argument(
        "--modes", nargs="+", default=["polling", "webhook"], choices=["polling", "webhook"]
    )
    parser.add_argument("--no-reformbot", action="store_true", help="measure the baseline only")
    args = parser.parse_args()
    asyncio.run(main(args.users, args.messages, args.modes, not args.no_reformbot))
