"""The command line: `reformbot run | check-config | db | import | invite`."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot import migrate
from bot.channels.render import format_value
from bot.cli.common import (
    EXIT_USAGE,
    ConfigOpt,
    bot_username,
    cli_actor,
    console,
    err,
    run_service,
    say,
    settings_or_exit,
)
from bot.cli.directives import directive_app
from bot.cli.dossiers import apology_app
from bot.cli.dossiers import register_import as register_dossier_import
from bot.cli.imports import import_app
from bot.cli.language import LocalisedGroup
from bot.cli.service_points import qr_app, register_imports
from bot.cli.surveys import survey_app
from bot.cli.tasks import task_app
from bot.clock import SystemClock
from bot.config import Settings, resolve_path, webhook_paths
from bot.i18n import t
from bot.services.org import invites
from bot.services.org.access import system_actor

app = typer.Typer(
    help="cli_help.app",
    cls=LocalisedGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="cli_help.db", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(directive_app, name="directive")
app.add_typer(task_app, name="task")
app.add_typer(survey_app, name="survey")
app.add_typer(qr_app, name="qr")
app.add_typer(apology_app, name="apology")
register_imports(import_app)
register_dossier_import(import_app)


@app.command("check-config", help="cli_help.check_config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration and print what is wrong."""
    settings = settings_or_exit(config, to_run=True)
    file = resolve_path(config)
    tg = settings.telegram
    say(settings, "cli.config_ok", source=str(file) if file else "defaults")
    loc = settings.i18n.default_locale
    say(
        settings,
        "cli.config_summary",
        database=make_url(settings.database.url).render_as_string(hide_password=True),
        timezone=settings.scheduler.timezone,
        locale=loc,
        admins=len(settings.bootstrap.admins),
    )
    if not tg.enabled:
        say(settings, "cli.telegram_off")
    else:
        token = t("cli.token_set" if tg.token else "cli.token_missing", loc)
        say(settings, "cli.telegram_summary", mode=tg.mode, token=token, api=tg.api_base_url)
    zalo = settings.zalo
    if not zalo.enabled:
        say(settings, "cli.zalo_off")
    else:
        token = t("cli.token_set" if zalo.bot_token else "cli.token_missing", loc)
        say(settings, "cli.zalo_summary", mode=zalo.mode, token=token, api=zalo.api_base)
    oa = zalo.oa
    where = f"{tg.webhook_listen}:{tg.webhook_port}"
    if oa.enabled:
        webhook = f"{where}/{oa.webhook_path.strip('/')}"
        say(settings, "cli.zalo_oa_summary", oa_id=oa.oa_id or "", webhook=webhook)
    paths = webhook_paths(settings)
    if paths:
        say(settings, "cli.webhook_summary", listen=where, paths=", ".join(paths.values()))
    board = settings.dashboard
    if board.enabled:
        listen = f"{board.host}:{board.port}"
        say(settings, "dashboard.cli.summary", listen=listen, url=board.public_url or "")


@app.command("run", help="cli_help.run")
def run(config: ConfigOpt = None) -> None:
    """Run the bot (each channel on, by polling or webhook as configured) until SIGTERM."""
    from bot import app as bot_app
    from bot import logs
    from bot.startup import StartupFault

    settings = settings_or_exit(config, to_run=True)
    logs.configure(settings.logging, secrets=logs.secrets_of(settings))
    try:
        bot_app.run(settings)
    except StartupFault as fault:
        message = fault.message(settings.i18n.default_locale)
        err.print(logs.Redactor(logs.secrets_of(settings)).redact(message), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    say(settings, "cli.stopped")


@db_app.command("upgrade", help="cli_help.db_upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply every pending migration."""
    settings = settings_or_exit(config)
    try:
        migrate.upgrade_sync(settings.database.url)
        revision = asyncio.run(migrate.current(settings.database.url))
    except (SQLAlchemyError, OSError) as exc:
        err.print(
            t("cli.db_error", settings.i18n.default_locale, reason=str(exc)[:300]), markup=False
        )
        raise typer.Exit(1) from None
    say(settings, "cli.db_upgraded", revision=revision)


@db_app.command("current", help="cli_help.db_current")
def db_current(config: ConfigOpt = None) -> None:
    """Print the schema version of the database."""
    settings = settings_or_exit(config)
    revision = asyncio.run(migrate.current(settings.database.url))
    say(
        settings,
        "cli.db_current",
        revision=revision or t("cli.db_empty", settings.i18n.default_locale),
    )


def _write_invites(
    path: Path, batch: invites.InviteBatch, username: str, settings: Settings
) -> None:
    """Write the invite links as a CSV for mail merge."""
    loc = settings.i18n.default_locale
    cols = ("code", "name", "unit", "link", "expires")
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([t(f"cli.invite_col_{c}", loc) for c in cols])
        for i in batch.issued:
            writer.writerow(
                [
                    i.person_code,
                    i.full_name,
                    i.unit_code or "",
                    invites.deep_link(username, i.code),
                    format_value(i.expires_at, loc, settings.scheduler.tz),
                ]
            )


@app.command("invite", help="cli_help.invite")
def invite(
    person: Annotated[str | None, typer.Option(help="cli_help.invite_person")] = None,
    unit: Annotated[str | None, typer.Option(help="cli_help.invite_unit")] = None,
    all_unlinked: Annotated[
        bool, typer.Option("--all-unlinked", help="cli_help.invite_all_unlinked")
    ] = False,
    days: Annotated[int | None, typer.Option(help="cli_help.invite_days")] = None,
    out: Annotated[Path | None, typer.Option(help="cli_help.invite_out")] = None,
    username: Annotated[str | None, typer.Option(help="cli_help.invite_username")] = None,
    config: ConfigOpt = None,
) -> None:
    """Make single-use invite links that link staff chat accounts to their records."""
    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    name = (username or "").lstrip("@") or bot_username(settings)
    if not name:
        err.print(t("cli.invite_need_username", loc), markup=False)
        raise typer.Exit(EXIT_USAGE)
    batch = run_service(
        settings,
        lambda session: invites.create_invites(
            session,
            actor=system_actor(cli_actor()),
            now=SystemClock().now(),
            valid_days=days or settings.invites.valid_days,
            person_code=person,
            unit_code=unit,
            all_unlinked=all_unlinked,
        ),
    )
    if not batch.issued:
        say(settings, "cli.invite_none", skipped=batch.skipped_linked)
        return
    expires = format_value(batch.issued[0].expires_at, loc, settings.scheduler.tz)
    say(
        settings,
        "cli.invite_done",
        count=len(batch.issued),
        skipped=batch.skipped_linked,
        expires=expires,
    )
    if out is not None:
        _write_invites(out, batch, name, settings)
        say(settings, "cli.invite_written", path=str(out))
        return
    for i in batch.issued:
        link = invites.deep_link(name, i.code)
        row = t(
            "cli.invite_row", loc, code=i.person_code, name=i.full_name, unit=i.unit_code or "–"
        )
        # Never cut or wrap: the link must survive copy and paste whole, whatever the width.
        console.print(row, markup=False, highlight=False, soft_wrap=True)
        console.print(f"  {link}", markup=False, highlight=False, soft_wrap=True)


@app.command("dashboard-password", help="cli_help.dashboard_password")
def dashboard_password(
    person: Annotated[str, typer.Argument(help="cli_help.dashboard_password_person")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="cli_help.dashboard_password_stdin")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Set a leader's, admin's or head's dashboard password (asked twice, never echoed)."""
    import getpass
    import sys

    from bot.services.dashboard import auth

    settings = settings_or_exit(config)
    loc = settings.i18n.default_locale
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(t("dashboard.cli.password_prompt", loc) + ": ")
        if getpass.getpass(t("dashboard.cli.password_again", loc) + ": ") != password:
            err.print(t("dashboard.cli.password_mismatch", loc), markup=False)
            raise typer.Exit(EXIT_USAGE)
    found = run_service(
        settings,
        lambda session: auth.set_password(
            session,
            person_code=person,
            password=password,
            now=SystemClock().now(),
            actor=system_actor(cli_actor()),
        ),
    )
    url = settings.dashboard.public_url or t("dashboard.cli.no_url", loc)
    say(settings, "dashboard.cli.password_set", name=found.full_name, code=found.code, url=url)


@app.command("demo", help="cli_help.demo")
def demo(
    port: Annotated[int, typer.Option(help="cli_help.demo_port")] = 8080,
    host: Annotated[str, typer.Option(help="cli_help.demo_host")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(help="cli_help.demo_data_dir")] = Path("data/demo"),
    dashboard_port: Annotated[int, typer.Option(help="cli_help.demo_dashboard_port")] = 8081,
) -> None:
    """Run the offline demo: a demo department, the sandbox Bot API and the bot, no token."""
    from bot import logs
    from bot.cli import demo as demo_mod
    from bot.config import LoggingSettings
    from bot.startup import StartupFault

    logs.configure(LoggingSettings(level="WARNING"))
    if not demo_mod.EXAMPLES.is_dir():
        err.print(t("demo.no_examples", None, path=str(demo_mod.EXAMPLES)), markup=False)
        raise typer.Exit(EXIT_USAGE)
    db = demo_mod.fresh_database(data_dir)

    def out(text: str) -> None:
        # Not wrapped by rich: the commands it shows must survive copy and paste whole.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    try:
        asyncio.run(
            demo_mod.run_demo(host=host, port=port, db=db, say=out, dashboard_port=dashboard_port)
        )
    except StartupFault as fault:  # the dashboard's port, say
        err.print(fault.message(None), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        if exc.errno in (98, 48):  # address in use (Linux, macOS)
            err.print(t("demo.port_busy", None, port=port), markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        raise


@app.command(
    "sandbox",
    help="cli_help.sandbox",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sandbox(ctx: typer.Context) -> None:
    """Run the sandbox Bot API server alone (options: reformbot sandbox --help)."""
    from bot.sandbox.__main__ import main as sandbox_main

    raise typer.Exit(sandbox_main(ctx.args, prog=ctx.command_path))


def main() -> None:
    """Run the command line."""
    app()
