"""`reformbot import units|staff FILE`: load the organisation from CSV or Excel files."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from alembic.util.exc import CommandError
from rich.console import Console
from rich.progress import Progress as ProgressBar
from rich.table import Table as RichTable
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from bot.clock import SystemClock
from bot.config import ConfigError, Settings, load_settings
from bot.db import create_engine, session_maker, transaction
from bot.i18n import normalize_locale, t
from bot.migrate import upgrade
from bot.services.calendar import WorkCalendar
from bot.services.org.imports import (
    STAFF,
    UNITS,
    ImportFileError,
    ImportReport,
    Progress,
    Table,
    TableSpec,
    import_staff,
    import_units,
    read_table,
)

EXIT_OK, EXIT_BAD_ROWS, EXIT_UNUSABLE = 0, 1, 2
PROGRESS_FROM = 500
SUBJECT_MAX = 255

Job = Callable[..., Awaitable[ImportReport]]

import_app = typer.Typer(help="import.cli.help", no_args_is_help=True)

FileArg = Annotated[
    Path, typer.Argument(help="import.cli.file_help", dir_okay=False, show_default=False)
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="import.cli.dry_run_help")]
LangOpt = Annotated[str | None, typer.Option("--lang", help="import.cli.lang_help")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="import.cli.config_help")]


@dataclass(frozen=True)
class ImportKind:
    """One kind of import: its name in messages, its file columns and its service."""

    name: str
    spec: TableSpec
    job: Job
    messages: str = "import.cli"
    calendar: bool = False  # the job takes the working calendar (`cal`)


KINDS = {
    "units": ImportKind("units", UNITS, import_units),
    "staff": ImportKind("staff", STAFF, import_staff),
}


@import_app.command("units", help="import.cli.units_help")
def units_command(
    file: FileArg, dry_run: DryRunOpt = False, lang: LangOpt = None, config: ConfigOpt = None
) -> None:
    """Import units from a file."""
    raise typer.Exit(
        run_import(KINDS["units"], file=file, dry_run=dry_run, lang=lang, config=config)
    )


@import_app.command("staff", help="import.cli.staff_help")
def staff_command(
    file: FileArg, dry_run: DryRunOpt = False, lang: LangOpt = None, config: ConfigOpt = None
) -> None:
    """Import staff from a file."""
    raise typer.Exit(
        run_import(KINDS["staff"], file=file, dry_run=dry_run, lang=lang, config=config)
    )


def run_import(
    kind: ImportKind, *, file: Path, dry_run: bool, lang: str | None, config: Path | None
) -> int:
    """Run one import from the command line and return the exit status."""
    console = Console(highlight=False)
    settings, locale = _settings(console, lang=lang, config=config)
    if settings is None:
        return EXIT_UNUSABLE
    try:
        table = read_table(file, spec=kind.spec)
    except ImportFileError as exc:
        console.print(Text(t(exc.key, locale, **exc.params), style="red"))
        return EXIT_UNUSABLE
    try:
        report = _execute(
            console, kind, table, settings=settings, dry_run=dry_run, file=file, locale=locale
        )
    except (SQLAlchemyError, CommandError, OSError) as exc:
        console.print(Text(t("import.cli.db_error", locale, reason=str(exc)[:300]), style="red"))
        return EXIT_UNUSABLE
    return _show(console, kind, report, locale=locale, file=file)


def _settings(
    console: Console, *, lang: str | None, config: Path | None
) -> tuple[Settings | None, str]:
    """Load the settings and pick the display language; print the problems of a bad config."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        locale = normalize_locale(lang)
        console.print(Text(t("import.cli.config_error", locale), style="red"))
        for problem in exc.problems:
            reason = t(problem.reason, locale, **problem.params)
            params = {"key": problem.key, "message": reason, "source": problem.source}
            console.print(Text(t("import.cli.config_problem", locale, **params)))
        return None, locale
    return settings, normalize_locale(lang or settings.i18n.default_locale)


def _execute(
    console: Console,
    kind: ImportKind,
    table: Table,
    *,
    settings: Settings,
    dry_run: bool,
    file: Path,
    locale: str,
) -> ImportReport:
    """Run the import against the configured database, with a progress bar for big files."""
    args: dict[str, Any] = {
        "table": table,
        "actor": cli_actor(),
        "now": SystemClock().now(),
        "dry_run": dry_run,
        "source": str(file)[:SUBJECT_MAX],
    }
    if kind.calendar:
        args["cal"] = WorkCalendar.from_settings(settings)
    url = settings.database.url
    if len(table.rows) <= PROGRESS_FROM:
        return asyncio.run(_in_transaction(url, kind.job, args, progress=None))
    with ProgressBar(console=console, transient=True) as bar:
        task = bar.add_task(t("import.cli.progress", locale), total=None)

        def advance(done: int, total: int) -> None:
            """Move the bar."""
            bar.update(task, completed=done, total=total)

        return asyncio.run(_in_transaction(url, kind.job, args, progress=advance))


async def _in_transaction(
    url: str, job: Job, args: dict[str, Any], *, progress: Progress | None
) -> ImportReport:
    """Bring the schema up to date, then run the import in one transaction."""
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with transaction(session_maker(engine)) as session:
            return await job(session, progress=progress, **args)
    finally:
        await engine.dispose()


def _show(
    console: Console, kind: ImportKind, report: ImportReport, *, locale: str, file: Path
) -> int:
    """Print the problems or the summary and return the exit status."""
    if report.warnings:
        warnings = ImportReport(problems=report.warnings)
        table = problems_table(warnings, locale=locale, title=file.name)
        table.title = Text(t("calendar.warnings_title", locale, path=file.name))
        console.print(table)
        console.print(Text(t("calendar.appointment_warning", locale), style="yellow"))
    if not report.ok:
        console.print(problems_table(report, locale=locale, title=file.name))
        params = {"problems": len(report.problems), "rows": report.bad_rows}
        console.print(Text(t("import.cli.rejected", locale, **params), style="red"))
        return EXIT_BAD_ROWS
    key = f"{kind.messages}.{'dry' if report.dry_run else 'done'}_{kind.name}"
    counts = {
        "total": report.total,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
    }
    console.print(Text(t(key, locale, **counts), style="green"))
    return EXIT_OK


def problems_table(report: ImportReport, *, locale: str, title: str) -> RichTable:
    """Build the table of problems: row, column, reason in the chosen language."""
    table = RichTable(title=Text(t("import.cli.problems_title", locale, path=title)))
    table.add_column(t("import.cli.col_row", locale), justify="right", no_wrap=True)
    table.add_column(t("import.cli.col_column", locale))
    table.add_column(t("import.cli.col_reason", locale), ratio=1)
    for problem in report.problems:
        reason = t(problem.key, locale, **problem.params)
        table.add_row(str(problem.row), Text(problem.column), Text(reason))
    return table


def cli_actor() -> str:
    """Return the audit actor of a command-line import: 'cli:' and the OS user name."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
