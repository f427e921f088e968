"""`reformbot demo`: a realistic department, the sandbox and the bot, offline, in one process."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot import migrate, sqlite_driver
from bot.app import build, serve, stop_on_signals
from bot.clock import SystemClock
from bot.config import Settings
from bot.db import SessionMaker, create_engine, session_maker, transaction
from bot.i18n import t
from bot.sandbox.server import DEFAULT_TOKEN, DEFAULT_USERNAME, SandboxServer
from bot.sandbox.zalo import ZaloSandbox
from bot.services.delivery import contacts
from bot.services.dossiers.dossiers import DOSSIERS, import_dossiers
from bot.services.org import invites
from bot.services.org.access import system_actor
from bot.services.org.imports import STAFF, UNITS, import_staff, import_units, read_table
from bot.services.ratings.service_points import (
    COUNTERS,
    PROCEDURES,
    import_counters,
    import_procedures,
    payload_for_counter,
)

log = logging.getLogger(__name__)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACTOR = "demo"
RATING_COUNTER = "UBND.ANPHU.Q1"  # the head of its unit is the "head" persona
DASHBOARD_PERSONA = "leader"  # who the hint tells to send /dashboard
DASHBOARD_PASSWORD = "demo-dashboard-2026"  # the admin persona's, printed: the demo is offline
SURVEY_FILE = "survey_par_index.toml"  # imported by the demo, ready to launch
SURVEY_CODE = "PAR2026"  # its code
SURVEY_UNITS = ("SGD.VP", "UBND.VKHANG")  # the two units the guide launches it to
SURVEY_DAYS = 3  # the guide's closing date: working days from today


@dataclass(frozen=True)
class DemoPersona:
    """Someone to chat as in the simulator: a staff record (or a citizen) and a sandbox user."""

    id: str
    user_id: int
    role_key: str
    person_code: str | None
    name: str
    unit: str
    linked: bool = True


PERSONAS = (
    DemoPersona(
        "admin", 710001, "demo.persona.admin", "CB007", "Hoàng Thị Ngọc Lan", "Văn phòng Sở"
    ),
    DemoPersona(
        "leader",
        710002,
        "demo.persona.leader",
        "CB001",
        "Trần Quốc Hưng",
        "Sở Giáo dục và Đào tạo tỉnh An Phú",
    ),
    DemoPersona(
        "head",
        710003,
        "demo.persona.head",
        "CB030",
        "Nguyễn Hữu Phước",
        "UBND phường An Phú",
    ),
    DemoPersona(
        "staff",
        710004,
        "demo.persona.staff",
        "CB031",
        "Trần Thị Ánh Tuyết",
        "UBND phường An Phú",
    ),
    DemoPersona(
        "newcomer",
        710005,
        "demo.persona.newcomer",
        "CB053",
        "Trần Văn Lâm",
        "Trường THCS Nguyễn Trãi",
        linked=False,
    ),
    DemoPersona("citizen", 710006, "demo.persona.citizen", None, "Nguyễn Văn Dân", "–"),
)


def _colleagues(
    prefix: str, role_key: str, unit: str, people: tuple[tuple[str, str], ...]
) -> tuple[DemoPersona, ...]:
    """Return the personas of a unit's staff linked on Telegram (user id: 710010 + their number)."""
    return tuple(
        DemoPersona(f"{prefix}-{code}", 710000 + int(code[2:]) + 10, role_key, code, name, unit)
        for code, name in people
    )


# The two units the example survey goes to, each with five people who answer (the smallest
# group whose anonymous answers are shown): the rest of the Department Office, with the admin;
# the commune's staff on Telegram, with its member on Zalo (ZALO_PERSONAS).
OFFICE_PERSONAS = _colleagues(
    "office",
    "demo.persona.office",
    "Văn phòng Sở",
    (
        ("CB004", "Phạm Minh Tuấn"),
        ("CB005", "Đặng Thị Mai Anh"),
        ("CB006", "Vũ Đức Long"),
        ("CB008", "Bùi Thị Hồng Nhung"),
    ),
)
COMMUNE_PERSONAS = _colleagues(
    "commune",
    "demo.persona.commune",
    "UBND xã Vĩnh Khang",
    (
        ("CB033", "Phạm Thị Thanh Hương"),
        ("CB061", "Trần Minh Khôi"),
        ("CB062", "Phạm Thị Ngọc Diệp"),
        ("CB063", "Võ Thành Đạt"),
    ),
)
# Personas on Zalo (the sandbox's Zalo Bot API, ids as strings there): a member of staff who
# receives the example directive and a citizen who rates; the bot's [zalo] points at the sandbox.
ZALO_DEMO = True
ZALO_PERSONAS = (
    DemoPersona(
        "zalo-staff",
        7100000000000000034,
        "demo.persona.staff",
        "CB034",
        "Huỳnh Tấn Lộc",
        "UBND xã Vĩnh Khang",
    ),
    DemoPersona(
        "zalo-citizen", 7100000000000000007, "demo.persona.citizen", None, "Lê Thị Thu", "–"
    ),
)


async def _import_examples(maker: SessionMaker, examples: Path) -> None:
    """Load the example department through the import services."""
    now = SystemClock().now()
    for name, spec, job in (
        ("units", UNITS, import_units),
        ("staff", STAFF, import_staff),
        ("procedures", PROCEDURES, import_procedures),
        ("counters", COUNTERS, import_counters),
        ("dossiers", DOSSIERS, import_dossiers),
    ):
        table = read_table(examples / f"{name}.csv", spec=spec)
        async with transaction(maker) as session:
            report = await job(session, table=table, actor=ACTOR, now=now)
        if not report.ok:
            raise RuntimeError(f"example {name}.csv has bad rows: {report.problems[:3]}")


async def _import_survey(maker: SessionMaker, examples: Path) -> str:
    """Import the example questionnaire (PAR INDEX), ready to launch; return its code."""
    from bot.services.surveys import questionnaire

    checked = questionnaire.read_file(examples / SURVEY_FILE)
    if checked.definition is None:
        raise RuntimeError(f"example {SURVEY_FILE} has problems: {checked.problems[:3]}")
    async with transaction(maker) as session:
        await questionnaire.save(
            session, checked.definition, actor=system_actor(ACTOR), now=SystemClock().now()
        )
    return checked.definition.code


async def _link(maker: SessionMaker, persona: DemoPersona, channel: str = "telegram") -> str | None:
    """Link a persona's chat account through a real invite; return the code when left unused."""
    assert persona.person_code is not None
    now = SystemClock().now()
    async with transaction(maker) as session:
        batch = await invites.create_invites(
            session,
            actor=system_actor(ACTOR),
            now=now,
            valid_days=30,
            person_code=persona.person_code,
        )
        code = batch.issued[0].code
        if not persona.linked:
            return code
        identity = contacts.Identity(channel, str(persona.user_id), persona.name)
        contact = await contacts.touch(session, identity=identity, now=now, default_locale="vi")
        await session.flush()
        await invites.redeem(session, contact=contact, code=code, now=now)
    return None


async def _issue_example_directive(maker: SessionMaker, settings: Settings) -> None:
    """Issue the example directive, so the staff personas find a notice to acknowledge."""
    from bot.cli.directives import read_file, to_draft
    from bot.services.calendar import WorkCalendar
    from bot.services.directives import directives

    now = SystemClock().now()
    cal = WorkCalendar.from_settings(settings)
    deadline = cal.close_of_business(now, 2)
    spec = read_file(EXAMPLES / "directive.toml")
    draft = to_draft(spec, deadline=deadline, attachment_id=None)
    async with transaction(maker) as session:
        await directives.issue(
            session,
            actor=system_actor(ACTOR),
            draft=draft,
            now=now,
            default_deadline=deadline,
            cal=cal,
        )


async def seed(
    maker: SessionMaker,
    examples: Path = EXAMPLES,
    settings: Settings | None = None,
    *,
    zalo: bool = ZALO_DEMO,
    history: bool = True,
    now: datetime | None = None,
) -> dict[str, str]:
    """Build the demo department, its past and a directive; return unused invite codes by persona.

    The past (bot.cli.demo_history) is played before anyone links a chat account, so none of
    its messages waits to be sent when the bot starts.
    """
    from bot.cli.demo_history import seed_history

    await _import_examples(maker, examples)
    await _import_survey(maker, examples)
    if history:  # three months in a few long transactions: nothing to warn about
        with sqlite_driver.long_writes_expected():
            await seed_history(maker, now=now or SystemClock().now(), settings=settings)
    codes = {}
    on_zalo = ZALO_PERSONAS if zalo else ()
    on_telegram = [*PERSONAS, *OFFICE_PERSONAS, *COMMUNE_PERSONAS]
    for persona, channel in [(p, "telegram") for p in on_telegram] + [(p, "zalo") for p in on_zalo]:
        if persona.person_code is not None:
            code = await _link(maker, persona, channel)
            if code:
                codes[persona.id] = code
    await _issue_example_directive(maker, settings or Settings())
    return codes


def sandbox_personas(locale: str = "vi") -> list[dict[str, Any]]:
    """Return the personas as the simulator page shows them."""
    return [
        {
            "id": p.id,
            "label": p.name,
            "role": t(p.role_key, locale),
            "unit": p.unit,
            "user_id": p.user_id,
            "first_name": p.name.split()[-1],
            "last_name": " ".join(p.name.split()[:-1]),
            "language_code": "vi",
        }
        for p in (*PERSONAS, *OFFICE_PERSONAS, *COMMUNE_PERSONAS)
    ]


def zalo_sandbox_personas(locale: str = "vi") -> list[dict[str, Any]]:
    """Return the Zalo personas as the simulator page shows them (on the Zalo Bot API)."""
    return [
        {
            "id": p.id,
            "label": p.name,
            "role": t(p.role_key, locale),
            "unit": p.unit,
            "user_id": str(p.user_id),
            "display_name": p.name,
            "surface": "bot",
        }
        for p in ZALO_PERSONAS
    ]


def zalo_hint(locale: str = "vi") -> str:
    """Return what to type as the Zalo personas: the acknowledgement and the rating code."""
    staff, citizen = ZALO_PERSONAS
    return t(
        "demo.zalo_hint",
        locale,
        staff=staff.name,
        unit=staff.unit,
        citizen=citizen.name,
        code=payload_for_counter(RATING_COUNTER),
    )


async def past_campaign(maker: SessionMaker) -> int | None:
    """Return the id of the history's closed survey, if the demo has one."""
    from sqlmodel import col, select

    from bot.models import Campaign, CampaignStatus

    async with maker() as session:
        stmt = select(Campaign.id).where(Campaign.status == CampaignStatus.CLOSED)
        return (await session.exec(stmt.order_by(col(Campaign.id)))).first()


def survey_hint(
    settings: Settings, locale: str = "vi", now: datetime | None = None, before: int | None = None
) -> str:
    """Return how the admin launches the example survey to two units, and how it is answered;
    with the history's closed survey, how to see it and compare."""
    from bot.services.calendar import WorkCalendar

    cal = WorkCalendar.from_settings(settings)
    closes = cal.close_of_business(now or SystemClock().now(), SURVEY_DAYS)
    command = survey_launch_command(cal.local(closes).date())
    staff = next(p for p in ZALO_PERSONAS if p.id == "zalo-staff")
    hint = t(
        "demo.survey_hint",
        locale,
        command=command,
        office=", ".join(p.name for p in OFFICE_PERSONAS),
        commune=", ".join(p.name for p in COMMUNE_PERSONAS),
        zalo=staff.name,
        unit=staff.unit,
    )
    if before is None:
        return hint
    return hint + " " + t("demo.survey_before_hint", locale, id=before)


def survey_launch_command(closes: date) -> str:
    """Return the admin's command launching the example survey to the demo's two units."""
    return f"/survey_launch {SURVEY_CODE} units:{','.join(SURVEY_UNITS)} {closes:%d/%m/%Y}"


def demo_settings(server: SandboxServer, db_url: str) -> Settings:
    """Return settings that point the bot at the sandbox (Zalo too, when it has Zalo)."""
    zalo: dict[str, Any] = {}
    if server.zalo is not None:
        zalo = {
            "enabled": True,
            "bot_token": server.zalo.bot.token,
            "api_base": server.zalo_base_url,
            "poll_timeout": 5,
        }
    return Settings(
        telegram={
            "token": DEFAULT_TOKEN,
            "username": DEFAULT_USERNAME,
            "api_base_url": server.base_url,
            "api_file_url": server.file_base_url,
        },
        zalo=zalo,
        database={"url": db_url},
    )


def write_cli_config(db: Path, url: str | None = None) -> Path:
    """Write a config beside the demo database, so other commands work on what the demo shows."""
    path = db.parent / "config.toml"
    if url is None or url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{db.resolve()}"
    body = (
        "# Written by `reformbot demo`: the other commands work on the demo's database.\n"
        f"[database]\nurl = {json.dumps(url)}\n\n"
        f"[telegram]\nusername = {json.dumps(DEFAULT_USERNAME)}\n"
    )
    path.write_text(body, encoding="utf-8")
    return path


def fresh_database(data_dir: Path) -> Path:
    """Remove the previous demo database; return the path of the new one."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return db


async def _started(bot_task: asyncio.Task[None], ready: asyncio.Event) -> None:
    """Wait until the bot is ready, or raise what stopped it from starting."""
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({bot_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if bot_task.done():
        bot_task.result()


async def run_demo(
    *,
    host: str,
    port: int,
    db: Path,
    say: Callable[[str], None],
    stop: asyncio.Event | None = None,
    zalo: bool = ZALO_DEMO,
    dashboard_port: int | None = None,
    url: str | None = None,
) -> None:
    """Seed a fresh demo database, start the sandbox, the bot and the dashboard; wait for Ctrl-C.

    The dashboard listens on `dashboard_port` (a free port when None) on the same host; `url`
    puts the demo on another (empty) database than the SQLite file `db`.
    """
    url = url or f"sqlite+aiosqlite:///{db}"
    await migrate.upgrade(url)
    engine = create_engine(url)
    maker = session_maker(engine)
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    server = SandboxServer(zalo=ZaloSandbox() if zalo else None)
    try:
        codes = await seed(maker, zalo=zalo)
        await server.start(host, port)
        server.set_personas(sandbox_personas())
        if server.zalo is not None:
            server.zalo.set_personas(zalo_sandbox_personas())
        settings = with_official_account(server, demo_settings(server, url))
        settings = await with_dashboard(maker, settings, host, dashboard_port)
        ready = asyncio.Event()
        bot_task = asyncio.create_task(serve(build(settings, maker=maker), stop, ready))
        await _started(bot_task, ready)
        say(t("demo.ready", "vi", url=server.url, db=str(db)))
        if "newcomer" in codes:
            say(t("demo.invite_hint", "vi", command=f"/start {codes['newcomer']}"))
        rating = f"/start {payload_for_counter(RATING_COUNTER)}"
        say(t("demo.rating_hint", "vi", command=rating))
        if server.zalo is not None:
            say(zalo_hint())
        say(survey_hint(settings, before=await past_campaign(maker)))
        say(dashboard_hint(settings))
        config = write_cli_config(db, url)
        say(t("demo.config_hint", "vi", command=f"export REFORMBOT_CONFIG={config.resolve()}"))
        await bot_task
        say(t("demo.stopping", "vi"))
    finally:
        await server.stop()
        await engine.dispose()


def _free_port(host: str) -> int:
    """Return a port nobody listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def with_dashboard(
    maker: SessionMaker, settings: Settings, host: str, port: int | None
) -> Settings:
    """Turn the dashboard on at host:port and give the admin persona the demo password."""
    from bot.services.dashboard import auth

    port = port or _free_port(host)
    admin = next(p for p in PERSONAS if p.id == "admin")
    assert admin.person_code is not None
    async with transaction(maker) as session:
        await auth.set_password(
            session,
            person_code=admin.person_code,
            password=DASHBOARD_PASSWORD,
            now=SystemClock().now(),
            actor=system_actor(ACTOR),
        )
    values = {"enabled": True, "host": host, "port": port, "public_url": f"http://{host}:{port}"}
    return settings.model_copy(update={"dashboard": type(settings.dashboard)(**values)})


def dashboard_hint(settings: Settings, locale: str = "vi") -> str:
    """Return where the dashboard is and the two ways to sign in to it."""
    leader = next(p for p in PERSONAS if p.id == DASHBOARD_PERSONA)
    admin = next(p for p in PERSONAS if p.id == "admin")
    return t(
        "demo.dashboard_hint",
        locale,
        url=settings.dashboard.public_url or "",
        persona=f"{leader.name} ({t(leader.role_key, locale)})",
        code=admin.person_code or "",
        password=DASHBOARD_PASSWORD,
    )


OA_CITIZEN = DemoPersona(
    "oa-citizen", 7200000000000000008, "demo.persona.citizen", None, "Phạm Thị Hoa", "–"
)


def with_official_account(server: SandboxServer, settings: Settings) -> Settings:
    """Connect the bot to the sandbox's Official Account, with a citizen persona following it.

    Kept apart from the Zalo Bot API personas; without the sandbox's Zalo side, nothing changes.
    """
    import socket

    from bot.sandbox.zalo import ZaloPersona

    z = server.zalo
    if z is None:
        return settings
    with socket.socket() as probe:  # a free port for the worker's webhook server (the OA's path)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    p = OA_CITIZEN
    persona = ZaloPersona(
        p.id, p.name, t(p.role_key, "vi"), p.unit, str(p.user_id), p.name, surface="oa"
    )
    z.set_personas([*z.personas, persona])
    z.oa.webhook_url = f"http://127.0.0.1:{port}/zalo-oa"
    oa = z.oa.settings
    values = {
        "enabled": True,
        "app_id": oa.app_id,
        "oa_id": oa.oa_id,
        "secret_key": oa.app_secret,
        "oa_secret_key": oa.oa_secret_key,
        "refresh_token": z.oa.issue(z.wall())["refresh_token"],
        "api_base": server.zalo_base_url + "/oa",
        "oauth_base": server.zalo_base_url + "/oauth",
    }
    zalo = settings.zalo.model_copy(update={"oa": type(settings.zalo.oa)(**values)})
    telegram = settings.telegram.model_copy(update={"webhook_port": port})
    return settings.model_copy(update={"zalo": zalo, "telegram": telegram})
