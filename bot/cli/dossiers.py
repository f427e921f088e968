"""`reformbot import dossiers FILE`, `reformbot apology create CODE ...` and `apology print`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    NextWorkingDayOpt,
    cli_actor,
    err,
    run_service,
    say,
    settings_or_exit,
)
from bot.cli.imports import ConfigOpt as ImportConfigOpt
from bot.cli.imports import DryRunOpt, FileArg, ImportKind, LangOpt, run_import
from bot.clock import SystemClock
from bot.i18n import t
from bot.services.calendar import WorkCalendar
from bot.services.dossiers import apologies
from bot.services.dossiers.apology_slip import Issuer
from bot.services.dossiers.dossiers import DOSSIERS, appointment_parser, import_dossiers
from bot.services.org.access import system_actor
from bot.services.org.imports.values import FieldError

DOSSIER_IMPORT = ImportKind("dossiers", DOSSIERS, import_dossiers, calendar=True)

apology_app = typer.Typer(help="apology.cli.help", no_args_is_help=True)

IdArg = Annotated[int, typer.Argument(help="apology.cli.id_help", show_default=False)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="apology.cli.out_help", dir_okay=False)]


@apology_app.callback()
def apology_group() -> None:
    """Work with apology slips."""


def dossiers_command(
    file: FileArg,
    dry_run: DryRunOpt = False,
    lang: LangOpt = None,
    config: ImportConfigOpt = None,
) -> None:
    """Import or update dossiers from a file."""
    raise typer.Exit(
        run_import(DOSSIER_IMPORT, file=file, dry_run=dry_run, lang=lang, config=config)
    )


def register_import(app: typer.Typer) -> None:
    """Add `dossiers` to the `import` command group."""
    app.command("dossiers", help="dossier.cli.import_help")(dossiers_command)


@apology_app.command("print", help="apology.cli.print_help")
def print_command(apology_id: IdArg, out: OutOpt, config: ConfigOpt = None) -> None:
    """Write an answered apology's slip to a DOCX file."""
    settings = settings_or_exit(config)

    async def work(session: AsyncSession) -> bytes:
        """Read the stored slip."""
        document = await apologies.slip_document(session, apology_id=apology_id)
        return document.data

    out.write_bytes(run_service(settings, work))
    say(settings, "apology.cli.written", id=apology_id, path=str(out))


@apology_app.command("create", help="apology.cli.create_help")
def create_command(
    code: Annotated[str, typer.Argument(help="apology.cli.code_help", show_default=False)],
    reason: Annotated[str, typer.Option("--reason", help="apology.cli.reason_help")],
    new_date: Annotated[str, typer.Option("--new-date", help="apology.cli.new_date_help")],
    next_working_day: NextWorkingDayOpt = False,
    place: Annotated[str | None, typer.Option("--place", help="apology.cli.place_help")] = None,
    config: ConfigOpt = None,
) -> None:
    """Make an apology for a dossier and queue it to its followers, or say it must be printed."""
    settings = settings_or_exit(config)
    loc, agency = settings.i18n.default_locale, settings.agency
    try:
        new_return_at = appointment_parser(settings.scheduler.tz)(new_date.strip())
    except FieldError:
        err.print(t("apology.cli.bad_date", loc, value=new_date), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    made = run_service(
        settings,
        lambda session: apologies.make_for_dossier(
            session,
            actor=system_actor(cli_actor()),
            code=code,
            reason=reason,
            new_return_at=new_return_at,
            now=SystemClock().now(),
            cal=WorkCalendar.from_settings(settings),
            move_to_working_day=next_working_day,
            place=place,
            issuer=Issuer(name=agency.name, symbol=agency.symbol, place=agency.place),
        ),
    )
    apology_id, dossier = made.apology.id, made.dossier
    new_at = made.apology.new_return_at
    assert new_at is not None
    shown = new_at.astimezone(settings.scheduler.tz).strftime("%H:%M %d/%m/%Y")
    say(settings, "apology.cli.created", id=apology_id, code=dossier.code, new_date=shown)
    if made.queued:
        say(settings, "apology.cli.queued", count=made.queued)
    else:
        say(settings, "apology.cli.must_print", id=apology_id, name=dossier.citizen_name)
