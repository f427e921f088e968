"""`reformbot task import | add | list | series`: deadline tasks from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.render import format_value
from bot.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    NextWorkingDayOpt,
    cli_actor,
    console,
    err,
    run_service,
    say,
    settings_or_exit,
)
from bot.cli.imports import problems_table
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.i18n import t
from bot.models import Directive, TaskSeries
from bot.services import digests
from bot.services.calendar import NOT_WORKING_KEYS, WorkCalendar
from bot.services.errors import NotFound
from bot.services.org import org
from bot.services.org.access import Actor, system_actor
from bot.services.org.imports import ImportFileError, ImportReport
from bot.services.org.imports.values import FieldError
from bot.services.tasks import task_import, task_series, tasks

EXIT_BAD_ROWS = 1
CLOCK: Clock = SystemClock()

task_app = typer.Typer(help="cli_task.help", no_args_is_help=True)
series_app = typer.Typer(help="cli_task.series_help", no_args_is_help=True)
task_app.add_typer(series_app, name="series")

UnitsOpt = Annotated[list[str], typer.Option("--unit", help="cli_task.unit_help")]
TitleOpt = Annotated[str, typer.Option("--title", help="cli_task.title_help")]
DetailsOpt = Annotated[str, typer.Option("--details", help="cli_task.details_help")]


def _actor() -> Actor:
    """Return the operator at this terminal, with every role."""
    return system_actor(cli_actor())


def _show(settings: Settings, value: datetime) -> str:
    """Format a moment in the installation's language and time zone."""
    return format_value(value, settings.i18n.default_locale, settings.scheduler.tz)


def _fail(settings: Settings, key: str, code: int, **params: object) -> typer.Exit:
    """Print a translated error and return the exit to raise."""
    loc = settings.i18n.default_locale
    err.print(t("cli.error", loc, message=t(key, loc, **params)), markup=False)
    return typer.Exit(code)


@task_app.command("import", help="cli_task.import_help")
def import_command(
    file: Annotated[Path, typer.Argument(help="cli_task.file_help", dir_okay=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="cli_task.dry_run_help")] = False,
    next_working_day: NextWorkingDayOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Assign the tasks of a CSV or XLSX file, all or nothing."""
    settings = settings_or_exit(config)
    try:
        table = task_import.read_tasks(file)
    except ImportFileError as exc:
        raise _fail(settings, exc.key, EXIT_USAGE, **exc.params) from None
    now, cal = CLOCK.now(), WorkCalendar.from_settings(settings)

    async def work(session: AsyncSession) -> task_import.TaskImportReport:
        return await task_import.import_tasks(
            session,
            table=table,
            actor=_actor(),
            now=now,
            cal=cal,
            settings=settings.tasks,
            dry_run=dry_run,
            source=str(file),
            next_working_day=next_working_day,
        )

    report = run_service(settings, work)
    if not report.ok:
        _rejected(settings, report, file)
        raise typer.Exit(EXIT_BAD_ROWS)
    _imported(settings, report)


def _rejected(settings: Settings, report: task_import.TaskImportReport, file: Path) -> None:
    """Print the bad rows of a file."""
    loc = settings.i18n.default_locale
    rows = ImportReport(problems=report.problems)
    console.print(problems_table(rows, locale=loc, title=file.name))
    say(settings, "import.cli.rejected", problems=len(report.problems), rows=report.bad_rows)


def _imported(settings: Settings, report: task_import.TaskImportReport) -> None:
    """Print the tasks an import created (or would create)."""
    for plan in report.tasks:
        say(
            settings,
            "cli_task.task_line",
            id=f"#{plan.task_id}" if plan.task_id else "•",
            title=plan.title,
            due=_show(settings, plan.due_at),
            units=", ".join(plan.units),
        )
    key = "cli_task.import_dry" if report.dry_run else "cli_task.imported"
    say(settings, key, tasks=len(report.tasks), assignments=report.assignments)
    if report.unreached:
        codes = sorted(report.unreached)
        say(settings, "cli_task.unreached", count=len(codes), codes=", ".join(codes))


def _due(
    settings: Settings, due: str | None, days: int | None, now: datetime, *, move: bool
) -> datetime:
    """Return the due moment of --due or --days; exit 2 when neither or both or a bad one."""
    if (due is None) == (days is None):
        raise _fail(settings, "cli_task.due_or_days", EXIT_USAGE)
    cal = WorkCalendar.from_settings(settings)
    text = due if due is not None else str(days)
    try:
        return task_import.parse_due(text, now=now, cal=cal)
    except FieldError as exc:
        if exc.key not in NOT_WORKING_KEYS.values():
            raise _fail(settings, exc.key, EXIT_USAGE, **exc.params) from None
        if not move:
            exit_ = _fail(settings, exc.key, EXIT_USAGE, **exc.params)
            hint = t("calendar.cli_move_hint", settings.i18n.default_locale, **exc.params)
            err.print(hint, markup=False)
            raise exit_ from None
        say(settings, "calendar.moved", **exc.params)
        return task_import.parse_due(text, now=now, cal=cal, move=True)


@task_app.command("add", help="cli_task.add_help")
def add_command(
    unit: UnitsOpt,
    title: TitleOpt,
    due: Annotated[str | None, typer.Option("--due", help="cli_task.due_help")] = None,
    days: Annotated[int | None, typer.Option("--days", min=0, help="cli_task.days_help")] = None,
    details: DetailsOpt = "",
    assignee: Annotated[
        list[str] | None, typer.Option("--assignee", help="cli_task.assignee_help")
    ] = None,
    directive: Annotated[
        int | None, typer.Option("--directive", help="cli_task.directive_help")
    ] = None,
    ladder: Annotated[str | None, typer.Option("--ladder", help="cli_task.ladder_help")] = None,
    next_working_day: NextWorkingDayOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Assign one task to one or more units."""
    settings = settings_or_exit(config)
    now = CLOCK.now()
    codes = tuple(dict.fromkeys(code.strip().upper() for code in unit if code.strip()))
    new = tasks.NewTask(
        title=title,
        units=codes,
        due_at=_due(settings, due, days, now, move=next_working_day),
        details=details,
        directive_id=directive,
        assignees=tuple(assignee or ()),
        ladder=ladder,
    )
    task_id, unreached = run_service(settings, lambda s: _assign(s, new, settings, now))
    due_text = _show(settings, new.due_at)
    say(settings, "cli_task.added", id=task_id, title=title, units=len(codes), due=due_text)
    if unreached:
        say(settings, "cli_task.unreached", count=len(unreached), codes=", ".join(unreached))


async def _assign(
    session: AsyncSession, new: tasks.NewTask, settings: Settings, now: datetime
) -> tuple[int | None, list[str]]:
    """Check the people and the directive named, create the task, list units told nobody."""
    people = await task_import.check_assignees(
        session, unit_codes=new.units, person_codes=new.assignees
    )
    if new.directive_id is not None and await session.get(Directive, new.directive_id) is None:
        raise NotFound("task_import.error.unknown_directive", value=new.directive_id)
    task, rows = await tasks.create(
        session,
        actor=_actor(),
        new=replace(new, assignees=people),
        now=now,
        cal=WorkCalendar.from_settings(settings),
        settings=settings.tasks,
    )
    return task.id, await task_import.unreached_units(session, rows)


@task_app.command("list", help="cli_task.list_help")
def list_command(
    unit: Annotated[str | None, typer.Option("--unit", help="cli_task.list_unit_help")] = None,
    config: ConfigOpt = None,
) -> None:
    """List the open assignments, soonest due first, overdue ones marked."""
    settings = settings_or_exit(config)
    now, cal = CLOCK.now(), WorkCalendar.from_settings(settings)

    async def work(session: AsyncSession) -> list[digests.OpenItem]:
        unit_id = (await org.unit_by_code(session, unit)).id if unit else None
        return await digests.open_assignments(session, now=now, cal=cal, unit_id=unit_id)

    items = run_service(settings, work)
    if not items:
        say(settings, "cli_task.none")
        return
    console.print(_open_table(settings, items))
    overdue = sum(1 for item in items if item.overdue)
    say(settings, "cli_task.list_total", count=len(items), overdue=overdue)


def _open_table(settings: Settings, items: Sequence[digests.OpenItem]) -> Table:
    """Build the table of open assignments."""
    loc = settings.i18n.default_locale
    cols = ("col_id", "col_unit", "col_task", "col_due", "col_state")
    table = Table(*(t(f"cli_task.{c}", loc) for c in cols))
    for item in items:
        state = (
            t("cli_task.state_overdue", loc, days=item.overdue_days)
            if item.overdue
            else t("cli_task.state_open", loc)
        )
        table.add_row(
            str(item.task.id),
            item.unit.code,
            item.task.title,
            _show(settings, item.assignment.due_at),
            state,
            style="red" if item.overdue else None,
        )
    return table


@series_app.command("add", help="cli_task.series_add_help")
def series_add(
    unit: UnitsOpt,
    title: TitleOpt,
    cron: Annotated[str, typer.Option("--cron", help="cli_task.cron_help")],
    lead_days: Annotated[int, typer.Option("--lead-days", help="cli_task.lead_days_help")] = 10,
    details: DetailsOpt = "",
    config: ConfigOpt = None,
) -> None:
    """Create a recurring task."""
    settings = settings_or_exit(config)
    row = run_service(
        settings,
        lambda s: task_series.create_series(
            s,
            actor=_actor(),
            title=title,
            details=details,
            cron=cron,
            unit_codes=unit,
            lead_days=lead_days,
            now=CLOCK.now(),
            tz=settings.scheduler.tz,
        ),
    )
    assert row.next_due_at is not None
    units = len(row.unit_codes.split(","))
    due = _show(settings, row.next_due_at)
    say(
        settings, "series.created", id=row.id, title=row.title, units=units, due=due, lead=lead_days
    )


@series_app.command("list", help="cli_task.series_list_help")
def series_list(config: ConfigOpt = None) -> None:
    """List the recurring tasks."""
    settings = settings_or_exit(config)
    rows = run_service(settings, task_series.list_series)
    if not rows:
        say(settings, "series.none")
    for row in rows:
        say(settings, "series.line", **_series_params(settings, row))


def _series_params(settings: Settings, row: TaskSeries) -> dict[str, Any]:
    """Return the parameters of one line of the series list."""
    loc = settings.i18n.default_locale
    if row.active and row.next_due_at is not None:
        state = t("series.next_due", loc, due=_show(settings, row.next_due_at))
    else:
        state = t("series.inactive", loc)
    return {
        "id": row.id,
        "title": row.title,
        "cron": row.cron,
        "lead": row.lead_days,
        "units": row.unit_codes.replace(",", ", "),
        "state": state,
    }


@series_app.command("stop", help="cli_task.series_stop_help")
def series_stop(
    series_id: Annotated[int, typer.Argument(help="cli_task.series_id_help")],
    config: ConfigOpt = None,
) -> None:
    """Stop a recurring task."""
    settings = settings_or_exit(config)
    row = run_service(
        settings,
        lambda s: task_series.stop_series(s, actor=_actor(), series_id=series_id, now=CLOCK.now()),
    )
    say(settings, "series.stopped", id=row.id, title=row.title)
