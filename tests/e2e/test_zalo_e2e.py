"""The real bot process on the sandbox's Zalo Bot API, by polling and by webhook: a member of
staff registers by sending the invite code, a citizen rates with typed answers, a directive is
acknowledged by typing, a unit reports a task done by typing, a citizen who follows a late
dossier on Zalo gets the apology, and forged webhook posts are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.render import typed_key
from bot.clock import SystemClock
from bot.config import TaskSettings
from bot.i18n import t
from bot.models import (
    Channel,
    Contact,
    Directive,
    DirectiveRecipient,
    Person,
    Rating,
    Role,
    ServiceCounter,
    TaskAssignment,
    TaskStatus,
    Unit,
    UnitKind,
)
from bot.sandbox.limits import Limits
from bot.sandbox.server import SandboxServer
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZaloSandbox
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.directives import directives
from bot.services.dossiers import apologies
from bot.services.dossiers.dossiers import DOSSIERS, import_dossiers
from bot.services.org import invites
from bot.services.org.access import Actor, roles_of, system_actor
from bot.services.org.imports import Table
from bot.services.ratings.service_points import payload_for_counter
from bot.services.tasks import tasks
from tests import factories as f
from tests.e2e.conftest import BotProcess, BotRunner, free_port
from tests.e2e.test_tasks_e2e import always_deliverable

pytestmark = pytest.mark.e2e

SECRET = "e2e-zalo-secret-0123456789"
NEWCOMER, HEAD, CITIZEN, FORGER = (f"71000000000000009{n:02d}" for n in range(4))
WAIT = 30.0
MODES = ["polling", "webhook"]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """Run the sandbox with its Zalo side (no flood limits: the bot paces itself)."""
    server = SandboxServer(zalo=ZaloSandbox(limits=Limits.off()))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


def zalo_env(sandbox: SandboxServer, mode: str, port: int | None = None) -> dict[str, str]:
    """Return the environment that turns the bot's Zalo side on against the sandbox."""
    env = {
        "REFORMBOT_ZALO__ENABLED": "true",
        "REFORMBOT_ZALO__BOT_TOKEN": DEFAULT_ZALO_TOKEN,
        "REFORMBOT_ZALO__API_BASE": sandbox.zalo_base_url,
        "REFORMBOT_ZALO__POLL_TIMEOUT": "5",
        "REFORMBOT_ZALO__CHAT_RATE": "30",
        "REFORMBOT_ZALO__MODE": mode,
    }
    if mode == "webhook":
        assert port is not None
        env |= {
            "REFORMBOT_ZALO__WEBHOOK_URL": f"http://127.0.0.1:{port}/zalo",
            "REFORMBOT_TELEGRAM__WEBHOOK_PORT": str(port),  # the worker's webhook server
            "REFORMBOT_ZALO__WEBHOOK_SECRET": SECRET,
        }
    return env


async def start_bot(
    runner: BotRunner, sandbox: SandboxServer, mode: str, **extra: str
) -> tuple[BotProcess, int]:
    """Start the real bot (Telegram by polling, Zalo in `mode`); return it and its Zalo port."""
    port = free_port()
    bot = await runner.start("polling", zalo_env(sandbox, mode, port) | extra)
    return bot, port


def came_by(sandbox: SandboxServer, mode: str) -> None:
    """Check the updates reached the bot the way the mode says: pushed, or fetched."""
    bot = zalo(sandbox).bot
    if mode == "webhook":
        assert bot.webhook is not None
        assert bot.webhook.secret_token == SECRET
        assert bot.counters.webhook_posts_total > 0
        assert bot.counters.by_method["getUpdates"] == 0
    else:
        assert bot.webhook is None
        assert bot.counters.webhook_posts_total == 0
        assert bot.counters.by_method["getUpdates"] > 0


def zalo(sandbox: SandboxServer) -> ZaloSandbox:
    """Return the sandbox's Zalo side."""
    assert sandbox.zalo is not None
    return sandbox.zalo


async def say(sandbox: SandboxServer, chat: str, text: str, count: int = 1) -> list[str]:
    """Type a text on Zalo; wait for `count` answers and return the texts sent after it."""
    side = zalo(sandbox)
    before = sum(1 for m in side.messages(chat) if m["sender"] == "bot")
    side.send_text(chat, text)
    sent = await side.wait_for_messages(chat, before + count, seconds=WAIT)
    return [str(m.get("text", "")) for m in sent[before:]]


async def contact_of(db, chat: str) -> Contact | None:
    """Read the Zalo chat account as the bot stored it."""
    async with db() as s:
        stmt = select(Contact).where(Contact.channel == Channel.ZALO, Contact.external_id == chat)
        return (await s.exec(stmt)).first()


# registration -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_staff_register_by_sending_the_invite_code_first(bot_runner, sandbox, db, mode):
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        await f.person(s, "ST02", root, name="Phạm Thị Bình")
        batch = await invites.create_invites(
            s,
            actor=system_actor("e2e"),
            now=SystemClock().now(),
            valid_days=1,
            person_code="ST02",
        )
        await s.commit()
    code = batch.issued[0].code
    zalo(sandbox).create_user("Bình", user_id=NEWCOMER)
    await start_bot(bot_runner, sandbox, mode)

    [linked, *_] = await say(sandbox, NEWCOMER, code)  # the bare code, as the QR card says
    assert linked.startswith("✅ Liên kết thành công")
    assert "Phạm Thị Bình" in linked
    assert "<b>" not in linked
    contact = await contact_of(db, NEWCOMER)
    assert contact is not None
    async with db() as s:
        person = await s.get(Person, contact.person_id)
    assert person is not None
    assert person.code == "ST02"
    [me] = await say(sandbox, NEWCOMER, "/me")
    assert "Phạm Thị Bình" in me
    assert t("channel.zalo", "vi") in me
    again = await say(sandbox, NEWCOMER, code)  # sent twice: nothing more to do
    assert again[-1] == t("invite.already_yours", "vi")
    came_by(sandbox, mode)


# a rating with typed answers, an acknowledgement by typing ----------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_citizen_rates_with_typed_answers(bot_runner, sandbox, db, mode):
    now = SystemClock().now()
    async with db() as s:
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        s.add(
            ServiceCounter(
                code="Q1", name="Quầy 1", unit_id=desk.id, created_at=now, updated_at=now
            )
        )
        await s.commit()
    zalo(sandbox).create_user("Dân", user_id=CITIZEN)
    await start_bot(bot_runner, sandbox, mode)

    greet = await say(sandbox, CITIZEN, payload_for_counter("Q1"))  # the QR's code, typed
    assert "Bộ phận Một cửa" in greet[0]
    for answer in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua", "Trần Văn Bộ", "bỏ qua"):
        replies = await say(sandbox, CITIZEN, answer)
        assert "\n1. " in replies[-1] or "\n5. " in replies[-1], answer  # a numbered list
    thanks = await say(sandbox, CITIZEN, "ẩn danh")
    assert thanks[0] == t("rating.thanks", "vi")
    async with db() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)
    assert rating.officer == "Trần Văn Bộ"
    came_by(sandbox, mode)


async def queue_directive(s: AsyncSession, unit: Unit, chat: str, now: datetime) -> int:
    """Store directive 15/CT-UBND for An, staff of `unit` on Zalo chat `chat`, with its notice
    queued; return the recipient row."""
    staff = await f.person(s, "ST", unit, Role.STAFF, name="An")
    contact = Contact(channel=Channel.ZALO, external_id=chat, person_id=staff.id, created_at=now)
    d = Directive(
        number="15/CT-UBND",
        issued_on=now.date(),
        title="Triển khai khảo sát SIPAS",
        summary="Đề nghị phổ biến tới cán bộ.",
        audience="everyone",
        target="all",
        ack_deadline=now + timedelta(days=2),
        created_by="e2e",
        created_at=now,
    )
    s.add_all([contact, d])
    await s.flush()
    assert d.id is not None
    assert staff.id is not None
    row = DirectiveRecipient(directive_id=d.id, person_id=staff.id, unit_id=unit.id)
    s.add(row)
    await s.flush()
    assert row.id is not None
    message = directives.notice(d, recipient_id=row.id, units=unit.name)
    await outbox.enqueue(s, contact=contact, message=message, kind="directive", now=now)
    return row.id


async def acknowledge_by_typing(sandbox: SandboxServer, db, chat: str, row_id: int) -> None:
    """Wait for the directive's notice, type «OK 15»; check the acknowledgement, by Zalo."""
    [notice] = await zalo(sandbox).wait_for_messages(chat, 1, seconds=WAIT)
    assert "15/CT-UBND" in notice["text"]
    assert notice["text"].endswith(f"1. {t('directive.ack_button', 'vi')}")
    [reply] = await say(sandbox, chat, "OK 15")
    assert "15/CT-UBND" in reply
    async with db() as s:
        acked = await s.get(DirectiveRecipient, row_id)
    assert acked is not None
    assert acked.acked_at is not None
    assert acked.ack_channel == "zalo"


@pytest.mark.parametrize("mode", MODES)
async def test_a_directive_acknowledged_by_typing(bot_runner, sandbox, db, mode):
    async with db() as s:
        unit = await f.unit(s, "PGD1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE)
        row_id = await queue_directive(s, unit, HEAD, SystemClock().now())
        await s.commit()
    zalo(sandbox).create_user("An", user_id=HEAD)
    await start_bot(bot_runner, sandbox, mode, **always_deliverable())

    await acknowledge_by_typing(sandbox, db, HEAD, row_id)
    came_by(sandbox, mode)


# a task done report -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_task_done_report_typed_on_zalo(bot_runner, sandbox, db, mode):
    now = SystemClock().now()
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
        dist = await f.unit(
            s, "PGD1", "Phòng GD&ĐT Đông Sơn", kind=UnitKind.DISTRICT_OFFICE, parent=root
        )
        head = await f.person(s, "HD", dist, Role.UNIT_HEAD, name="Hạnh")
        s.add(Contact(channel=Channel.ZALO, external_id=HEAD, person_id=head.id, created_at=now))
        due = WorkCalendar().require_working_day(now + timedelta(days=1), move=True)
        new = tasks.NewTask(title="Báo cáo CCHC tháng 12", units=("PGD1",), due_at=due)
        _, [row] = await tasks.create(
            s,
            actor=system_actor("e2e"),
            new=new,
            now=now,
            cal=WorkCalendar(),
            settings=TaskSettings(),
        )
        row.next_step_at = now - timedelta(minutes=1)  # a ladder step is due now
        s.add(row)
        await s.commit()
    zalo(sandbox).create_user("Hạnh", user_id=HEAD)
    await start_bot(bot_runner, sandbox, mode, **always_deliverable())

    notice, reminder = (
        str(m["text"]) for m in await zalo(sandbox).wait_for_messages(HEAD, 2, seconds=WAIT)
    )
    assert notice.startswith("📌 Nhiệm vụ mới")
    assert "Báo cáo CCHC tháng 12" in reminder
    assert "\n1. " in reminder  # the done button, as a numbered line
    asked = await say(sandbox, HEAD, "1")
    ask_note = t(typed_key("task.ask_note"), "vi", title="Báo cáo CCHC tháng 12")  # "gõ", no file
    assert asked[-1].startswith(ask_note + "\n")
    assert "\n1. Bỏ qua\n" in asked[-1]
    done = await say(sandbox, HEAD, "Đã gửi báo cáo số 45/BC-PGD")
    assert done[-1].startswith("Đã ghi nhận Phòng GD&ĐT Đông Sơn hoàn thành nhiệm vụ")
    async with db() as s:
        row = (await s.exec(select(TaskAssignment))).one()
    assert (row.status, row.done_note, row.late) == (
        TaskStatus.DONE,
        "Đã gửi báo cáo số 45/BC-PGD",
        False,
    )
    came_by(sandbox, mode)


# an apology to a citizen who follows the dossier on Zalo ------------------------------------

DOSSIER = "000.00.12.H10-261126-0004"


async def seed_dossier(db) -> None:
    """Import a dossier due today for the ward, with its head and an administrator."""
    today = WorkCalendar().local(SystemClock().now()).date()
    row = {
        "code": DOSSIER,
        "unit_code": "PGD1",
        "citizen_name": "Phạm Thu Dung",
        "phone": "0977888999",
        "received_on": (today - timedelta(days=10)).strftime("%d/%m/%Y"),
        "appointment_at": today.strftime("%d/%m/%Y"),
        "status": "Đang xử lý",
    }
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        pgd = await f.unit(s, "PGD1", "UBND phường Phước Long", parent=root)
        await f.person(s, "HD", pgd, Role.UNIT_HEAD, name="Hoàng Minh Đức")
        await f.person(s, "AD", root, Role.ADMIN, name="Quản Trị")
        table = Table.from_records(DOSSIERS, [row])
        await import_dossiers(s, table=table, actor="e2e", now=SystemClock().now())
        await s.commit()


async def make_apology(db) -> int:
    """Make the apology as the administrator would (`reformbot apology create`)."""
    now = SystemClock().now()
    cal = WorkCalendar()
    async with db() as s:
        admin = (await s.exec(select(Person).where(Person.code == "AD"))).one()
        actor = Actor(name="AD", roles=await roles_of(s, admin), person=admin)
        made = await apologies.make_for_dossier(
            s,
            actor=actor,
            code=DOSSIER,
            reason="Chờ kết quả xác minh",
            new_return_at=cal.require_working_day(now + timedelta(days=3), move=True),
            now=now,
            cal=cal,
            move_to_working_day=True,
        )
        await s.commit()
    return made.queued


@pytest.mark.parametrize("mode", MODES)
async def test_an_apology_reaches_a_citizen_following_the_dossier_on_zalo(
    bot_runner, sandbox, db, mode
):
    await seed_dossier(db)
    zalo(sandbox).create_user("Dung", user_id=CITIZEN)
    await start_bot(bot_runner, sandbox, mode, **always_deliverable())

    await say(sandbox, CITIZEN, "/follow")
    await say(sandbox, CITIZEN, DOSSIER)
    following, status = await say(sandbox, CITIZEN, "8999", count=2)
    assert following == t("dossier.flow.following", "vi")
    assert status.startswith(f"📄 Hồ sơ {DOSSIER}")
    assert await make_apology(db) == 1
    before = sum(1 for m in zalo(sandbox).messages(CITIZEN) if m["sender"] == "bot")
    sent = await zalo(sandbox).wait_for_messages(CITIZEN, before + 1, seconds=WAIT)
    apology = str(sent[-1]["text"])
    assert DOSSIER in apology
    assert "Phạm Thu Dung" in apology
    assert "Chờ kết quả xác minh" in apology
    assert "<b>" not in apology
    assert "phieu-xin-loi" in apology  # the slip cannot go as a file: the note names it
    came_by(sandbox, mode)


# forged webhook posts ----------------------------------------------------------------------


def update_from(user: str, text: str) -> dict[str, Any]:
    """Return a Zalo update as the platform would post it."""
    message = {
        "message_id": f"forged-{text}",
        "date": 1_764_464_400_000,
        "chat": {"id": user, "chat_type": "PRIVATE"},
        "from": {"id": user, "display_name": "Kẻ giả mạo"},
        "text": text,
    }
    return {"ok": True, "result": {"event_name": "message.text.received", "message": message}}


async def test_forged_webhook_posts_are_refused_and_nothing_is_handled(bot_runner, sandbox, db):
    side = zalo(sandbox)
    side.create_user("Người dân", user_id=CITIZEN)
    side.create_user("Kẻ giả mạo", user_id=FORGER)
    _, port = await start_bot(bot_runner, sandbox, "webhook")
    url = f"http://127.0.0.1:{port}/zalo"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Bot-Api-Secret-Token": "not-the-secret-0000"}):
            async with http.post(url, json=update_from(FORGER, "/help"), headers=headers) as r:
                assert r.status == 403, headers
    # a real message through the sandbox is answered: the bot was listening all along
    assert await say(sandbox, CITIZEN, "xin chào") == [t("text.hint_citizen", "vi")]
    assert await contact_of(db, FORGER) is None
    assert side.messages(FORGER) == []
