"""The real bot process against the sandbox over HTTP: polling and webhook, SQLite, PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import select

from bot.clock import SystemClock
from bot.i18n import t
from bot.models import Contact, Role, UnitKind
from bot.sandbox.faults import FaultRule
from bot.services.org import invites
from bot.services.org.access import system_actor
from tests import factories as f

pytestmark = pytest.mark.e2e

ADMIN, STAFF, NEWCOMER, CITIZEN, BLOCKER = 810001, 810002, 810003, 810004, 810005
WAIT = 20.0


async def seed(db) -> str:
    """Seed a small department; link the admin and a member of staff; return an invite code."""
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        dist = await f.unit(
            s, "PGD01", "Phòng GD&ĐT huyện Đông Sơn", kind=UnitKind.DISTRICT_OFFICE, parent=root
        )
        admin = await f.person(s, "AD01", root, Role.ADMIN, name="Trần Văn Quản")
        staff = await f.person(s, "ST01", dist, name="Nguyễn Văn An")
        await f.person(s, "ST02", dist, name="Phạm Thị Bình")
        await f.contact(s, str(ADMIN), admin)
        await f.contact(s, str(STAFF), staff)
        batch = await invites.create_invites(
            s,
            actor=system_actor("e2e"),
            now=SystemClock().now(),
            valid_days=1,
            person_code="ST02",
        )
        await s.commit()
    return batch.issued[0].code


def make_users(sandbox) -> None:
    """Create the sandbox users (and their private chats) the tests write as."""
    for uid in (ADMIN, STAFF, NEWCOMER, CITIZEN, BLOCKER):
        sandbox.create_user(f"Người dùng {uid}", user_id=uid)


async def ask(sandbox, uid: int, text: str) -> str:
    """Send text as a user and return the bot's next message to that chat."""
    before = sum(1 for m in sandbox.messages(uid) if m["sender"] == "bot")
    sandbox.send_text(uid, text)
    messages = await sandbox.wait_for_messages(uid, before + 1, seconds=WAIT)
    return str(messages[-1]["text"])


async def contact_of(db, uid: int) -> Contact | None:
    """Read a chat account as the bot stored it."""
    async with db() as s:
        return (await s.exec(select(Contact).where(Contact.external_id == str(uid)))).first()


async def test_bot_end_to_end(bot_process, sandbox, db):
    code = await seed(db)
    make_users(sandbox)

    linked = await ask(sandbox, NEWCOMER, f"/start {code}")
    assert linked.startswith("✅ Liên kết thành công")
    assert "Phạm Thị Bình" in linked
    assert (await contact_of(db, NEWCOMER)).person_id is not None
    again = await ask(sandbox, CITIZEN, f"/start {code}")
    assert again == t("invite.used", "vi")

    staff_help = await ask(sandbox, STAFF, "/help")
    admin_help = await ask(sandbox, ADMIN, "/help")
    assert "/me" in staff_help
    assert "/invite" not in staff_help
    assert "/invite" in admin_help

    assert await ask(sandbox, STAFF, "/khongco") == t(
        "errors.unknown_command", "vi", command="khongco"
    )
    assert await ask(sandbox, STAFF, "/invite ST01") == t("errors.forbidden", "vi")
    citizen = await ask(sandbox, CITIZEN, "xin chào")
    assert citizen == t("text.hint_citizen", "vi")


async def test_user_who_blocked_the_bot_is_marked(bot_process, sandbox, db):
    await seed(db)
    make_users(sandbox)
    sandbox.set_chat_faults(BLOCKER, FaultRule(blocked=True))
    sandbox.send_text(BLOCKER, "/help")
    async with asyncio.timeout(WAIT):
        # The bot is another process: its database write has no event to wait on here.
        while (c := await contact_of(db, BLOCKER)) is None or c.blocked_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert sandbox.counters().forbidden_total >= 1
    assert sandbox.messages(BLOCKER)[-1]["sender"] == "user"


@pytest.mark.parametrize("bot_process", ["webhook"], indirect=True)
async def test_webhook_refuses_requests_without_the_secret(bot_process):
    url = f"http://127.0.0.1:{bot_process.webhook_port}/telegram"
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json={"update_id": 1})
        wrong = await client.post(
            url, json={"update_id": 2}, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
        )
    assert response.status_code == 403
    assert wrong.status_code == 403


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_sigterm_loses_nothing(bot_runner, sandbox, db, mode):
    await seed(db)
    make_users(sandbox)
    bot = await bot_runner.start(mode)
    users = (ADMIN, STAFF, NEWCOMER, CITIZEN)
    for uid in users:
        sandbox.send_text(uid, "/help")
    await bot_runner.stop(bot)
    await bot_runner.start(mode)
    for uid in users:
        replies = await sandbox.wait_for_messages(uid, 1, seconds=WAIT)
        assert len(replies) == 1
        assert "/help" in replies[0]["text"]
