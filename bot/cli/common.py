"""What every command of the command line shares: settings, consoles, messages, the database."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import migrate
from bot.channels.render import format_value
from bot.config import (
    ConfigError,
    ConfigProblem,
    Settings,
    load_settings,
    resolve_path,
    run_problems,
)
from bot.db import create_engine, session_maker, transaction
from bot.i18n import t
from bot.services.calendar import NotWorkingDay, WorkCalendar
from bot.services.errors import ServiceError

console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="cli_help.config")]
EXIT_USAGE = 2
T = TypeVar("T")


def settings_or_exit(config: Path | None, *, to_run: bool = False) -> Settings:
    """Load settings, or print what is wrong (key and file) and exit with status 2.

    With `to_run`, also refuse what stops `reformbot run` (no channel on, a path twice).
    """
    from bot.config import configured_locale

    loc = configured_locale(["--config", str(config)] if config else [])
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _exit_with(exc.problems, loc)
    if to_run:
        file = resolve_path(config)
        problems = run_problems(settings, str(file) if file else "defaults")
        if problems:
            _exit_with(problems, settings.i18n.default_locale)
    return settings


def _exit_with(problems: list[ConfigProblem], loc: str) -> NoReturn:
    """Print each problem (key, reason, source) and exit with status 2."""
    err.print(t("cli.config_error", loc), style="red", markup=False)
    for p in problems:
        reason = t(p.reason, loc, **p.params)
        err.print(
            t("cli.config_problem", loc, key=p.key, message=reason, source=p.source),
            markup=False,
        )
    raise typer.Exit(EXIT_USAGE) from None


async def _ask_username(settings: Settings) -> str | None:
    """Ask the Bot API (getMe) for the bot's username."""
    if settings.telegram.token is None:
        return None
    from telegram import Bot
    from telegram.error import TelegramError

    token = settings.telegram.token.get_secret_value()
    try:
        async with Bot(token, base_url=settings.telegram.api_base_url) as bot:
            return bot.username
    except TelegramError:
        return None


def bot_username(settings: Settings) -> str | None:
    """Return the bot's username from the config, or else by asking the Bot API."""
    return settings.telegram.username or asyncio.run(_ask_username(settings))


def say(settings: Settings, key: str, **params: object) -> None:
    """Print a catalog message in the configured language."""
    console.print(t(key, settings.i18n.default_locale, **params), markup=False, highlight=False)


def cli_actor() -> str:
    """Return how the audit log names the operator at this terminal."""
    return f"cli:{getpass.getuser()}"


@asynccontextmanager
async def db_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """Open one transaction on the configured database, migrating it first."""
    await migrate.upgrade(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        async with transaction(session_maker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def run_service(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """Run one service call in a transaction; print a refusal (translated, with a hint), exit 1."""

    async def main() -> T:
        async with db_session(settings) as session:
            return await work(session)

    try:
        return asyncio.run(main())
    except ServiceError as exc:
        loc = settings.i18n.default_locale
        tz = settings.scheduler.tz
        params = {
            k: format_value(v, loc, tz) if isinstance(v, date) else v for k, v in exc.params.items()
        }
        err.print(t("cli.error", loc, message=t(exc.key, loc, **params)), markup=False)
        if isinstance(exc, NotWorkingDay):
            err.print(t("calendar.cli_move_hint", loc, **params), markup=False)
        raise typer.Exit(1) from None


NextWorkingDayOpt = Annotated[
    bool,
    typer.Option("--next-working-day", help="calendar.next_working_day_help"),
]


def on_working_day(settings: Settings, when: datetime, *, move: bool) -> datetime:
    """Return `when`, moved (and said so) to the next working day when asked and needed."""
    cal = WorkCalendar.from_settings(settings)
    off = cal.check_working_day(cal.local(when).date())
    if off is None or not move:
        return when  # the service refuses a day off, naming the next working day
    say(settings, "calendar.moved", **off.params())
    return cal.require_working_day(when, move=True)
