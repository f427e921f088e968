"""`reformbot directive send | status | list`: directives from the command line."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from bot.channels.render import format_value
from bot.cli.common import (
    ConfigOpt,
    NextWorkingDayOpt,
    cli_actor,
    console,
    err,
    on_working_day,
    run_service,
    say,
    settings_or_exit,
)
from bot.clock import SystemClock
from bot.config import Settings
from bot.i18n import t
from bot.i18n.formats import format_number
from bot.models import Audience, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.directives import attachments, directives
from bot.services.errors import InvalidInput
from bot.services.org.access import system_actor
from bot.services.reports.render import status_xlsx

directive_app = typer.Typer(help="cli_help.directive", no_args_is_help=True)


class TargetFile(BaseModel):
    """The [target] table of a directive file."""

    model_config = ConfigDict(extra="forbid")
    all: bool = False
    kinds: list[UnitKind] = []
    subtree: str | None = None
    units: list[str] = []


class DirectiveFile(BaseModel):
    """A directive described in TOML."""

    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=directives.NUMBER_MAX)
    date: date
    title: str = Field(min_length=1, max_length=directives.TITLE_MAX)
    summary: str = Field(min_length=1, max_length=directives.SUMMARY_MAX)
    audience: Literal["everyone", "heads"] = "everyone"
    ack_deadline: datetime | None = None
    ack_days: int | None = Field(None, ge=1, le=60)
    target: TargetFile


def read_file(path: Path) -> DirectiveFile:
    """Read and validate a directive file; errors name the field."""
    try:
        return DirectiveFile(**tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput("directive.error.bad_file", detail=str(exc)[:300]) from None
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput("directive.error.bad_file", detail=detail[:500]) from None


def to_draft(
    spec: DirectiveFile, *, deadline: datetime | None, attachment_id: int | None
) -> directives.Draft:
    """Turn a directive file into a draft."""
    target = directives.Target(
        all=spec.target.all,
        kinds=tuple(spec.target.kinds),
        subtree=spec.target.subtree,
        units=tuple(spec.target.units),
    )
    return directives.Draft(
        number=spec.number,
        issued_on=spec.date,
        title=spec.title,
        summary=spec.summary,
        target=target,
        audience=Audience(spec.audience),
        ack_deadline=deadline,
        attachment_id=attachment_id,
    )


def _deadline(spec: DirectiveFile, settings: Settings, now: datetime) -> datetime:
    """Return the file's deadline, or N working days from today at 17:00."""
    if spec.ack_deadline is not None:
        if spec.ack_deadline.tzinfo is None:
            return spec.ack_deadline.replace(tzinfo=settings.scheduler.tz)
        return spec.ack_deadline
    cal = WorkCalendar.from_settings(settings)
    days = spec.ack_days or settings.directives.default_ack_days
    return cal.close_of_business(now, days)


@directive_app.command("send", help="cli_help.directive_send")
def send(
    file: Annotated[Path, typer.Argument(help="cli_help.directive_file")],
    attach: Annotated[Path | None, typer.Option(help="cli_help.directive_attach")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="cli_help.directive_dry_run")] = False,
    next_working_day: NextWorkingDayOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Issue a directive to the staff of the targeted units (delivered by the running bot)."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    now, cal = SystemClock().now(), WorkCalendar.from_settings(settings)
    try:
        spec = read_file(file)
        data = attach.read_bytes() if attach else None
    except (InvalidInput, OSError) as exc:
        message = t(exc.key, loc, **exc.params) if isinstance(exc, InvalidInput) else str(exc)
        err.print(t("cli.error", loc, message=message), markup=False)
        raise typer.Exit(1) from None

    async def work(session):  # type: ignore[no-untyped-def]
        att = None
        if attach is not None and data is not None and not dry_run:
            att = attachments.store(session, name=attach.name, data=data, now=now)
            await session.flush()
        deadline = on_working_day(settings, _deadline(spec, settings, now), move=next_working_day)
        draft = to_draft(spec, deadline=deadline, attachment_id=att.id if att else None)
        if dry_run:
            directives.validate(draft, now=now)
            cal.require_working_day(deadline)
            if attach is not None:
                attachments.mime_for(attach.name)
            return await directives.plan(session, draft)
        return await directives.issue(
            session,
            actor=system_actor(cli_actor()),
            draft=draft,
            now=now,
            default_deadline=draft.ack_deadline or now,
            cal=cal,
        )

    result = run_service(settings, work)
    if isinstance(result, directives.Plan):
        say(
            settings,
            "cli.directive_plan",
            units=len(result.units),
            reachable=len(result.reachable),
            unreachable=len(result.unreachable),
        )
        unreachable = result.unreachable
    else:
        say(
            settings,
            "directive.issued",
            number=result.directive.number,
            queued=result.queued,
            unreachable=len(result.unreachable),
        )
        unreachable = result.unreachable
    for r in unreachable:
        say(settings, "directive.unreachable_line", name=r.person.full_name, unit=r.unit.name)


@directive_app.command("status", help="cli_help.directive_status")
def status(
    directive_id: Annotated[int, typer.Argument(help="cli_help.directive_id")],
    xlsx: Annotated[Path | None, typer.Option(help="cli_help.directive_xlsx")] = None,
    config: ConfigOpt = None,
) -> None:
    """Show who acknowledged a directive, unit by unit."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    result = run_service(
        settings,
        lambda s: directives.status(s, actor=system_actor(cli_actor()), directive_id=directive_id),
    )
    d = result.directive
    console.print(f"{d.number} – {d.title}", highlight=False, markup=False)
    columns = ("unit", "total", "acked", "median", "missing", "unreached")
    table = Table(*(t(f"directive.xlsx.{c}", loc) for c in columns))
    for u in result.units:
        median = (
            format_number(u.median_seconds / 3600, loc) if u.median_seconds is not None else "–"
        )
        missing, unreached = ", ".join(u.missing), ", ".join(u.unreached)
        table.add_row(u.unit.name, str(u.total), str(u.acked), median, missing, unreached)
    console.print(table)
    if xlsx is not None:
        xlsx.write_bytes(status_xlsx(result, locale=loc, settings=settings))
        say(settings, "cli.written", path=str(xlsx))


@directive_app.command("list", help="cli_help.directive_list")
def list_open(config: ConfigOpt = None) -> None:
    """List open directives with how many acknowledged."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    rows = run_service(
        settings, lambda s: directives.open_directives(s, actor=system_actor(cli_actor()))
    )
    if not rows:
        say(settings, "directive.open_empty")
        return
    for d, total, acked in rows:
        console.print(
            t(
                "directive.open_line",
                loc,
                id=d.id,
                number=d.number,
                title=d.title,
                total=total,
                acked=acked,
            ),
            markup=False,
            highlight=False,
        )
        console.print(
            f"   {format_value(d.ack_deadline, loc, settings.scheduler.tz)}",
            markup=False,
            highlight=False,
        )
