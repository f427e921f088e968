"""`reformbot import dossiers FILE` and `reformbot apology print ID --out FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli_common import ConfigOpt, run_service, say, settings_or_exit
from bot.cli_imports import ConfigOpt as ImportConfigOpt
from bot.cli_imports import DryRunOpt, FileArg, ImportKind, LangOpt, run_import
from bot.services import apologies
from bot.services.dossiers import DOSSIERS, import_dossiers

DOSSIER_IMPORT = ImportKind("dossiers", DOSSIERS, import_dossiers)

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
