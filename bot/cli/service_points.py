"""`reformbot import procedures|counters FILE` and `reformbot qr`: service points and QR codes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cli.common import ConfigOpt, bot_username, err, run_service, say, settings_or_exit
from bot.cli.imports import ConfigOpt as ImportConfigOpt
from bot.cli.imports import DryRunOpt, FileArg, ImportKind, LangOpt, run_import
from bot.config import Settings
from bot.i18n import t
from bot.services.ratings import qr
from bot.services.ratings.service_points import (
    COUNTERS,
    PROCEDURES,
    Kind,
    ServicePoint,
    active_counters,
    find_point,
    import_counters,
    import_procedures,
)

EXIT_USAGE = 2
SHEET_NAME = "qr-a4.html"
PDF_NAME = "qr-a4.pdf"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PDF_TIMEOUT = 120

POINT_KINDS = {
    "procedures": ImportKind("procedures", PROCEDURES, import_procedures, "points.cli"),
    "counters": ImportKind("counters", COUNTERS, import_counters, "points.cli"),
}

points_app = typer.Typer(no_args_is_help=True)
qr_app = typer.Typer(help="qr.cli.help")


# --- imports ------------------------------------------------------------------------------


@points_app.command("procedures", help="points.cli.procedures_help")
def procedures_command(
    file: FileArg, dry_run: DryRunOpt = False, lang: LangOpt = None, config: ImportConfigOpt = None
) -> None:
    """Import administrative procedures from a file."""
    kind = POINT_KINDS["procedures"]
    raise typer.Exit(run_import(kind, file=file, dry_run=dry_run, lang=lang, config=config))


@points_app.command("counters", help="points.cli.counters_help")
def counters_command(
    file: FileArg, dry_run: DryRunOpt = False, lang: LangOpt = None, config: ImportConfigOpt = None
) -> None:
    """Import service counters from a file."""
    kind = POINT_KINDS["counters"]
    raise typer.Exit(run_import(kind, file=file, dry_run=dry_run, lang=lang, config=config))


def register_imports(app: typer.Typer) -> None:
    """Add `procedures` and `counters` to the `import` command group."""
    app.command("procedures", help="points.cli.procedures_help")(procedures_command)
    app.command("counters", help="points.cli.counters_help")(counters_command)


# --- qr -----------------------------------------------------------------------------------


@qr_app.callback(invoke_without_command=True)
def qr_command(
    counter: Annotated[str | None, typer.Option(help="qr.cli.counter_help")] = None,
    unit: Annotated[str | None, typer.Option(help="qr.cli.unit_help")] = None,
    procedure: Annotated[str | None, typer.Option(help="qr.cli.procedure_help")] = None,
    all_counters: Annotated[
        bool, typer.Option("--all-counters", help="qr.cli.all_counters_help")
    ] = False,
    out: Annotated[Path, typer.Option(help="qr.cli.out_help")] = Path("qr"),
    username: Annotated[str | None, typer.Option(help="qr.cli.username_help")] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="qr.cli.pdf_help")] = False,
    config: ConfigOpt = None,
) -> None:
    """Make QR codes (PNG) and a printable A4 page for service points."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    chosen: list[tuple[Kind, str | None]] = [
        ("counter", counter),
        ("unit", unit),
        ("procedure", procedure),
    ]
    picked = [(kind, code) for kind, code in chosen if code]
    if len(picked) + all_counters != 1:
        _fail(loc, "qr.cli.need_one")
    name = (username or "").lstrip("@") or bot_username(settings)
    if not name:
        _fail(loc, "qr.cli.need_username")
    points = run_service(settings, lambda s: _points(s, picked[0] if picked else None))
    if not points:
        _fail(loc, "qr.cli.no_counters", status=1)
    sheet = write_outputs(
        points,
        out=out,
        username=name,
        locale=loc,
        agency=settings.agency.name,
        zalo_link=settings.zalo.bot_link,
    )
    say(settings, "qr.cli.written", count=len(points), out=out, sheet=sheet)
    if pdf:
        _print_pdf(settings, sheet)


def _fail(locale: str, key: str, *, status: int = EXIT_USAGE) -> NoReturn:
    """Print a translated error and exit."""
    err.print(t(key, locale), markup=False)
    raise typer.Exit(status)


async def _points(session: AsyncSession, picked: tuple[Kind, str] | None) -> list[ServicePoint]:
    """Return the one service point asked for, or every active counter."""
    if picked is None:
        return await active_counters(session)
    return [await find_point(session, *picked)]


def write_outputs(
    points: list[ServicePoint],
    *,
    out: Path,
    username: str,
    locale: str,
    agency: str | None = None,
    zalo_link: str | None = None,
) -> Path:
    """Write a PNG per point and the A4 sheet into a folder; return the sheet's path."""
    cards = [qr.make_card(point, username=username, zalo_link=zalo_link) for point in points]
    qr.write_pngs(cards, out)
    sheet = out / SHEET_NAME
    sheet.write_text(qr.sheet_html(cards, locale=locale, agency=agency), encoding="utf-8")
    return sheet


def find_browser() -> str | None:
    """Return the path of a Chromium that can print to PDF, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def print_pdf(browser: str, sheet: Path, pdf: Path) -> str | None:
    """Print an HTML page to PDF with headless Chromium; return None, or why it failed."""
    args = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf.resolve()}",
        sheet.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(args, capture_output=True, timeout=PDF_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)[:200]
    if done.returncode != 0 or not pdf.is_file():
        return f"exit {done.returncode}"
    return None


def _print_pdf(settings: Settings, sheet: Path) -> None:
    """Print the sheet to PDF beside it, or say why that cannot be done."""
    loc = settings.i18n.default_locale
    browser = find_browser()
    if browser is None:
        err.print(t("qr.cli.no_chromium", loc, sheet=sheet), markup=False)
        raise typer.Exit(1)
    pdf = sheet.with_name(PDF_NAME)
    reason = print_pdf(browser, sheet, pdf)
    if reason is not None:
        err.print(t("qr.cli.pdf_failed", loc, reason=reason, sheet=sheet), markup=False)
        raise typer.Exit(1)
    say(settings, "qr.cli.pdf_written", pdf=pdf)
