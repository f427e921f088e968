"""`reformbot survey import | launch | close | results`: survey campaigns from the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.render import format_value, html_to_plain, render
from bot.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    cli_actor,
    console,
    err,
    run_service,
    say,
    settings_or_exit,
)
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.i18n import t
from bot.models import Campaign
from bot.services.calendar import WorkCalendar
from bot.services.directives import attachments
from bot.services.errors import ServiceError
from bot.services.org.access import Actor, system_actor
from bot.services.org.imports import ImportFileError
from bot.services.org.imports.values import FieldError
from bot.services.surveys import campaigns, questionnaire, results, summary
from bot.services.tasks import task_import

EXIT_BAD_FILE = 1
CLOCK: Clock = SystemClock()

survey_app = typer.Typer(help="survey.cli.help", no_args_is_help=True)
IdArg = Annotated[int, typer.Argument(help="survey.cli.id_help", min=1)]


def _actor() -> Actor:
    """Return the operator at this terminal, with every role."""
    return system_actor(cli_actor())


def _fail(settings: Settings, key: str, code: int, **params: object) -> typer.Exit:
    """Print a translated error and return the exit to raise."""
    loc = settings.i18n.default_locale
    err.print(t("cli.error", loc, message=t(key, loc, **params)), markup=False)
    return typer.Exit(code)


def _problems(checked: questionnaire.Checked, *, locale: str, title: str) -> Table:
    """Build the table of a questionnaire's problems: question (or row), field, reason."""
    table = Table(title=Text(t("survey.cli.problems_title", locale, path=title)))
    for key in ("survey.cli.col_question", "import.cli.col_column", "import.cli.col_reason"):
        table.add_column(t(key, locale))
    for problem in checked.problems:
        reason = t(problem.key, locale, **problem.params)
        table.add_row(str(problem.row or "–"), Text(problem.column), Text(reason))
    return table


@survey_app.command("import", help="survey.cli.import_help")
def import_command(
    file: Annotated[Path, typer.Argument(help="survey.cli.file_help", dir_okay=False)],
    code: Annotated[str | None, typer.Option("--code", help="survey.cli.code_help")] = None,
    title: Annotated[str | None, typer.Option("--title", help="survey.cli.title_help")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="import.cli.dry_run_help")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check a questionnaire file and keep it (nothing is kept when it has a problem)."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    try:
        checked = questionnaire.read_file(file, code=code, title=title)
    except ImportFileError as exc:
        raise _fail(settings, exc.key, EXIT_USAGE, **exc.params) from None
    if checked.definition is None:
        console.print(_problems(checked, locale=loc, title=file.name))
        say(settings, "survey.cli.rejected", problems=len(checked.problems))
        raise typer.Exit(EXIT_BAD_FILE)
    form = checked.definition
    params = {"title": form.title, "code": form.code, "count": len(form.questions)}
    if dry_run:
        say(settings, "survey.cli.checked", **params)
        return
    now = CLOCK.now()
    run_service(settings, lambda s: questionnaire.save(s, form, actor=_actor(), now=now))
    say(settings, "survey.cli.imported", **params)


def _moment(settings: Settings, text: str, now: datetime) -> datetime:
    """Read 'dd/mm/yyyy [HH:MM]' or a number of working days; exit 2 when it cannot be used."""
    cal = WorkCalendar.from_settings(settings)
    try:
        return task_import.parse_due(text, now=now, cal=cal, move=True)
    except FieldError as exc:
        raise _fail(settings, exc.key, EXIT_USAGE, **exc.params) from None


async def _launch(
    session: AsyncSession,
    draft: campaigns.Draft,
    upload: tuple[str, bytes] | None,
    settings: Settings,
) -> tuple[Campaign, int]:
    """Keep the material's file (if any), launch the campaign, count its recipients."""
    now = CLOCK.now()
    if upload is not None:
        row = attachments.store(session, name=upload[0], data=upload[1], now=now)
        await session.flush()
        media = "image" if row.mime_type.startswith("image/") else "document"
        draft = campaigns.Draft(**{**draft.__dict__, "attachment_id": row.id, "media": media})
    campaign = await campaigns.launch(
        session, draft, actor=_actor(), now=now, floor=settings.surveys.min_group
    )
    count = len(await campaigns.recipients_of(session, campaign))
    return campaign, count


@survey_app.command("launch", help="survey.cli.launch_help")
def launch_command(
    title: Annotated[str, typer.Option("--title", help="survey.cli.campaign_title_help")],
    audience: Annotated[str, typer.Option("--audience", help="survey.cli.audience_help")],
    closes: Annotated[str, typer.Option("--closes", help="survey.cli.closes_help")],
    form: Annotated[
        str | None, typer.Option("--questionnaire", help="survey.cli.questionnaire_help")
    ] = None,
    material: Annotated[
        str | None, typer.Option("--material", help="survey.cli.material_help")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="survey.cli.material_file_help", dir_okay=False)
    ] = None,
    opens: Annotated[str | None, typer.Option("--opens", help="survey.cli.opens_help")] = None,
    named: Annotated[bool, typer.Option("--named", help="survey.cli.named_help")] = False,
    results_open: Annotated[
        bool, typer.Option("--results-open", help="survey.cli.results_open_help")
    ] = False,
    reminders: Annotated[
        int | None, typer.Option("--reminders", min=0, max=10, help="survey.cli.reminders_help")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Launch a campaign: a questionnaire, or a material (with an optional check)."""
    settings = settings_or_exit(config)
    now = CLOCK.now()
    if file is not None and not file.is_file():
        raise _fail(settings, "import.error.not_found", EXIT_USAGE, path=str(file))
    try:
        who = campaigns.Audience.parse(audience)
    except ServiceError as exc:
        raise _fail(settings, exc.key, EXIT_USAGE, **exc.params) from None
    draft = campaigns.Draft(
        title=title,
        audience=who,
        opens_at=_moment(settings, opens, now) if opens else now,
        closes_at=_moment(settings, closes, now),
        questionnaire=form,
        material=material,
        anonymous=not named,
        results_open=results_open,
        min_group=settings.surveys.min_group,
        reminders_max=settings.surveys.reminders_max if reminders is None else reminders,
        remind_every_hours=settings.surveys.remind_every_hours,
    )
    upload = (file.name, file.read_bytes()) if file is not None else None
    campaign, count = run_service(settings, lambda s: _launch(s, draft, upload, settings))
    loc, tz = settings.i18n.default_locale, settings.scheduler.tz
    say(
        settings,
        "survey.cli.launched",
        id=campaign.id,
        title=campaign.title,
        count=count,
        opens=format_value(campaign.opens_at, loc, tz),
        closes=format_value(campaign.closes_at, loc, tz),
    )


@survey_app.command("close", help="survey.cli.close_help")
def close_command(campaign_id: IdArg, config: ConfigOpt = None) -> None:
    """Close a campaign now."""
    settings = settings_or_exit(config)
    now = CLOCK.now()
    campaign = run_service(
        settings, lambda s: campaigns.close(s, campaign_id, actor=_actor(), now=now)
    )
    say(settings, "survey.closed", title=campaign.title, id=campaign_id)


@survey_app.command("results", help="survey.cli.results_help")
def results_command(
    campaign_id: IdArg,
    xlsx: Annotated[
        Path | None, typer.Option("--xlsx", help="survey.cli.xlsx_help", dir_okay=False)
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Print a campaign's results (as the rules allow), or write them to an XLSX file."""
    settings = settings_or_exit(config)
    loc, tz = settings.i18n.default_locale, settings.scheduler.tz
    res = run_service(settings, lambda s: results.results(s, campaign_id, actor=_actor()))
    if xlsx is not None:
        xlsx.write_bytes(results.workbook(res, locale=loc))
        say(settings, "survey.cli.written", path=str(xlsx))
        return
    text = html_to_plain(render(summary.results_message(res), loc, tz=tz))
    console.print(text, markup=False, highlight=False)
