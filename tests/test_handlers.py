"""Handler tests: a real Application, a fake Bot API, assertions on what users receive."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlmodel import select, update

from bot.i18n import t
from bot.models import Contact, Invite, Role, UnitKind
from bot.services.delivery import contacts
from bot.services.org import invites
from bot.services.org.access import system_actor
from handlers.routes import COMMANDS
from tests import factories as f
from tests import tg
from tests.fakes import BOT_USERNAME

STAFF_UID = 5001
ADMIN_UID = 5002
HEAD_UID = 5003
CITIZEN_UID = 9001


@pytest.fixture
async def org(bot_harness):
    """Seed a department with an admin, a head and a staff member, all linked."""
    async with bot_harness.maker() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        vp = await f.unit(s, "VP", "Văn phòng Sở", parent=root)
        dist = await f.unit(s, "PGD01", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE, parent=root)
        admin = await f.person(s, "AD01", vp, Role.ADMIN, Role.STAFF, name="Trần Văn Quản")
        head = await f.person(s, "HD01", dist, Role.UNIT_HEAD, name="Lê Thị Hạnh")
        staff = await f.person(s, "ST01", dist, name="Nguyễn Văn An")
        await f.person(s, "ST02", dist, name="Phạm Thị Bình")
        await f.contact(s, str(ADMIN_UID), admin)
        await f.contact(s, str(HEAD_UID), head)
        await f.contact(s, str(STAFF_UID), staff)
        await s.commit()
    return bot_harness


async def test_start_without_code_makes_a_citizen(bot_harness):
    texts = await bot_harness.send(CITIZEN_UID, "/start")
    assert texts == [t("start.welcome_citizen", "vi", agency="Sở Giáo dục và Đào tạo")]
    async with bot_harness.maker() as s:
        contact = (
            await s.exec(select(Contact).where(Contact.external_id == str(CITIZEN_UID)))
        ).one()
    assert contact.person_id is None
    assert contact.locale == "vi"


async def test_start_with_invite_links_the_account(org, clock):
    async with org.maker() as s:
        batch = await invites.create_invites(
            s, actor=system_actor("test"), now=clock.now(), valid_days=14, person_code="ST02"
        )
        await s.commit()
    code = batch.issued[0].code
    texts = await org.send(6001, f"/start {code}")
    assert len(texts) == 1
    assert "Phạm Thị Bình" in texts[0]
    assert "UBND xã Đông Sơn" in texts[0]
    assert texts[0].startswith("✅ Liên kết thành công")
    texts = await org.send(6001, "/me")
    assert "ST02" in texts[0]
    assert "Kênh đã liên kết: Telegram\n" in texts[0]


@pytest.mark.parametrize("case", ["garbage", "expired", "used"])
async def test_bad_invite_changes_nothing(org, clock, case):
    async with org.maker() as s:
        batch = await invites.create_invites(
            s, actor=system_actor("test"), now=clock.now(), valid_days=1, person_code="ST02"
        )
        await s.commit()
    code = batch.issued[0].code
    expected = {"garbage": "invite.invalid", "expired": "invite.expired", "used": "invite.used"}
    if case == "garbage":
        code = "inv_notarealcode"
    elif case == "expired":
        clock.advance(timedelta(days=2))
    else:
        await org.send(6001, f"/start {code}")
    texts = await org.send(6002, f"/start {code}")
    assert texts == [t(expected[case], "vi")]
    async with org.maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == "6002"))).one()
        invite = (await s.exec(select(Invite))).one()
    assert contact.person_id is None
    assert (invite.used_at is not None) == (case == "used")


async def test_help_lists_commands_by_role(org):
    citizen = (await org.send(CITIZEN_UID, "/help"))[0]
    staff = (await org.send(STAFF_UID, "/help"))[0]
    head = (await org.send(HEAD_UID, "/help"))[0]
    admin = (await org.send(ADMIN_UID, "/help"))[0]
    assert "/lang" in citizen
    assert "/me" not in citizen
    assert "/me" in staff
    assert "/people" not in staff
    assert "/people" in head
    assert "/invite" not in head
    assert "/invite" in admin
    assert "/units" in admin
    assert "quản trị" in admin


RESTRICTED = [c.name for c in COMMANDS.values() if c.roles and Role.STAFF not in c.roles]


def test_there_are_restricted_commands():
    assert {"invite", "units", "people"} <= set(RESTRICTED)


@pytest.mark.parametrize("name", RESTRICTED)
async def test_staff_is_refused_every_admin_command(org, name):
    for args in ("", " SGD", " ST02"):
        texts = await org.send(STAFF_UID, f"/{name}{args}")
        assert texts == [t("errors.forbidden", "vi")], (name, args)
    assert await org.send(CITIZEN_UID, f"/{name}") == [t("errors.forbidden", "vi")]


async def test_admin_invites_a_unit_in_chat(org):
    texts = await org.send(ADMIN_UID, "/invite PGD01")
    assert len(texts) == 1
    assert "Phạm Thị Bình" in texts[0]
    assert "Nguyễn Văn An" not in texts[0]  # already linked
    assert f"https://t.me/{BOT_USERNAME}?start=inv_" in texts[0]
    assert await org.send(ADMIN_UID, "/invite NOPE") == [
        t("invite.unknown_target", "vi", code="NOPE")
    ]


async def test_head_sees_only_own_unit(org):
    own = (await org.send(HEAD_UID, "/people"))[0]
    assert "Nguyễn Văn An" in own
    assert "chưa liên kết" in own
    assert await org.send(HEAD_UID, "/people VP") == [
        t("errors.forbidden_unit", "vi", unit="Văn phòng Sở")
    ]


async def test_units_tree_for_admin(org):
    text = (await org.send(ADMIN_UID, "/units"))[0]
    assert "SGD – Sở Giáo dục và Đào tạo" in text
    assert "  PGD01 – UBND xã Đông Sơn: 2/3" in text


async def test_lang_button_switches_and_edits(org):
    sent = await org.send(STAFF_UID, "/lang")
    markup = org.api.sent()[0]["reply_markup"]
    assert [b["callback_data"] for b in markup["inline_keyboard"][0]] == ["lang:vi", "lang:en"]
    assert sent == [t("lang.choose", "vi")]
    edited = await org.press(STAFF_UID, "lang:en", message_id=42)
    assert edited == ["Switched to English."]
    assert org.api.sent("editMessageText")[0]["message_id"] == 42
    assert org.api.sent("answerCallbackQuery")
    assert (await org.send(STAFF_UID, "/help"))[0].startswith("<b>Commands you may use</b>")


async def test_unknown_command_and_stale_button(org):
    assert await org.send(STAFF_UID, "/frobnicate") == [
        t("errors.unknown_command", "vi", command="frobnicate")
    ]
    assert await org.press(STAFF_UID, "zzz:1") == [t("errors.unknown_action", "vi")]


async def test_stop_tells_staff_what_still_comes_and_start_resubscribes(org):
    assert await org.send(STAFF_UID, "/stop") == [t("stop.done_staff", "vi")]
    async with org.maker() as s:
        c = (await s.exec(select(Contact).where(Contact.external_id == str(STAFF_UID)))).one()
    assert c.opted_out
    texts = await org.send(STAFF_UID, "/start")
    assert texts[0] == t("start.resubscribed", "vi")


async def test_blocking_is_recorded(org):
    await org.feed(tg.blocked_update(CITIZEN_UID + 1))  # unknown user: nothing to do
    await org.send(CITIZEN_UID, "xin chào")
    await org.feed(tg.blocked_update(CITIZEN_UID))
    async with org.maker() as s:
        c = (await s.exec(select(Contact).where(Contact.external_id == str(CITIZEN_UID)))).one()
    assert c.blocked_at is not None


async def test_oversize_text_is_refused_politely(org):
    texts = await org.send(CITIZEN_UID, "a" * 5000)
    assert texts == [t("errors.too_long", "vi", limit="4.096")]


async def test_user_text_is_escaped(org, clock):
    texts = await org.send(ADMIN_UID, "/invite <b>x</b>")
    assert texts == [t("invite.unknown_target", "vi", code="&lt;b&gt;x&lt;/b&gt;")]


async def test_internal_error_is_reported_without_internals(org, monkeypatch):
    async def boom(ctx):
        raise RuntimeError("secret detail")

    monkeypatch.setitem(COMMANDS, "me", replace(COMMANDS["me"], handler=boom))
    texts = await org.send(STAFF_UID, "/me")
    assert texts == [t("errors.internal", "vi")]
    assert "secret" not in texts[0]


async def test_internal_error_is_reported_in_the_persons_language(org, monkeypatch):
    async def boom(ctx):
        raise RuntimeError("secret detail")

    await org.send(STAFF_UID, "/lang en")
    monkeypatch.setitem(COMMANDS, "me", replace(COMMANDS["me"], handler=boom))
    assert await org.send(STAFF_UID, "/me") == [t("errors.internal", "en")]


FORGED = [
    "ack:abc",
    "ack:-1",
    "ack:0",
    "ack:99999999999999999999",
    "ack:١٢",
    "case:answer:-1",
    "case:close:abc",
    "casefb:x:yes",
    "casefb:1:maybe",
    "apology:-3",
    "task:abc",
    "bcancel:abc",
    "bcancel:1:now",
]


@pytest.mark.parametrize("data", FORGED)
async def test_forged_button_data_is_a_dead_button(org, data):
    assert await org.press(ADMIN_UID, data) == [t("errors.unknown_action", "vi")]


async def test_the_preview_button_still_explains_itself(org):
    assert await org.press(STAFF_UID, "ack:preview") == [t("directive.preview_pressed", "vi")]


async def test_reply_refused_with_403_marks_the_contact_blocked(org):
    org.api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    await org.send(CITIZEN_UID, "/help")
    async with org.maker() as s:
        c = (await s.exec(select(Contact).where(Contact.external_id == str(CITIZEN_UID)))).one()
    assert c.blocked_at is not None
    assert len(org.api.sent("sendMessage")) == 1  # no "something went wrong" follow-up


def contact_cache(harness):
    """Return the Application's cache of recently seen citizens."""
    return harness.app.bot_data["runtime"].deps.contacts


async def change_elsewhere(harness, uid: int, **values) -> None:
    """Change a contact's row as another process would (no ORM event in this one)."""
    async with harness.maker() as s:
        await s.exec(update(Contact).where(Contact.external_id == str(uid)).values(**values))
        await s.commit()


async def contact_row(harness, uid: int) -> Contact:
    """Return a contact's row as stored."""
    async with harness.maker() as s:
        return (await s.exec(select(Contact).where(Contact.external_id == str(uid)))).one()


async def test_a_refused_request_in_one_transaction_still_records_the_contact(org):
    assert await org.send(CITIZEN_UID + 7, "/units") == [t("errors.forbidden", "vi")]
    assert (await contact_row(org, CITIZEN_UID + 7)).last_seen_at is not None


async def test_a_cached_citizen_who_writes_is_unblocked_though_another_process_blocked_them(
    org, clock
):
    await org.send(CITIZEN_UID, "xin chào")
    await change_elsewhere(org, CITIZEN_UID, blocked_at=clock.now())
    clock.advance(timedelta(minutes=1))
    assert await org.send(CITIZEN_UID, "xin chào") == [t("text.hint_citizen", "vi")]
    row = await contact_row(org, CITIZEN_UID)
    assert row.blocked_at is None
    assert row.last_seen_at == clock.now()


async def test_a_language_chosen_is_used_from_the_next_message(org):
    await org.send(CITIZEN_UID, "xin chào")
    await org.send(CITIZEN_UID, "/lang en")
    assert await org.send(CITIZEN_UID, "hello") == [t("text.hint_citizen", "en")]


async def test_a_citizen_linked_by_another_process_is_staff_at_once(org):
    await org.send(CITIZEN_UID, "xin chào")
    async with org.maker() as s:
        person = await f.person(s, "ST09", None, name="Đỗ Văn Mới")
        await s.commit()
    await change_elsewhere(org, CITIZEN_UID, person_id=person.id)
    assert await org.send(CITIZEN_UID, "xin chào") == [t("text.hint_staff", "vi")]


async def test_a_language_chosen_in_another_process_is_used_at_once(org):
    await org.send(CITIZEN_UID, "xin chào")
    await change_elsewhere(org, CITIZEN_UID, locale="en")
    assert await org.send(CITIZEN_UID, "hello") == [t("text.hint_citizen", "en")]
    assert await org.send(CITIZEN_UID, "/units") == [t("errors.forbidden", "en")]


async def test_a_refusal_on_a_stale_view_is_handled_again(org):
    await org.send(ADMIN_UID + 50, "xin chào")
    async with org.maker() as s:
        admin = await f.person(s, "AD09", None, Role.ADMIN, name="Vũ Quản Trị")
        await s.commit()
    await change_elsewhere(org, ADMIN_UID + 50, person_id=admin.id)
    assert "SGD – Sở Giáo dục và Đào tạo" in (await org.send(ADMIN_UID + 50, "/units"))[0]


async def test_cached_citizens_expire(org):
    cache = contact_cache(org)
    now = [0.0]
    cache.clock = lambda: now[0]
    await org.send(CITIZEN_UID, "xin chào")
    identity = contacts.Identity("telegram", str(CITIZEN_UID))
    async with org.maker() as s:
        assert cache.attach(s, identity) is not None
    now[0] += cache.seconds
    async with org.maker() as s:
        assert cache.attach(s, identity) is None


async def test_staff_are_never_served_from_the_cache(org):
    assert await org.send(STAFF_UID, "xin chào") == [t("text.hint_staff", "vi")]
    await change_elsewhere(org, STAFF_UID, person_id=None)
    assert await org.send(STAFF_UID, "xin chào") == [t("text.hint_citizen", "vi")]
