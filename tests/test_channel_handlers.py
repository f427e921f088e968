"""/me, /channel and invites for a person linked on Telegram and Zalo, as the user sees them."""

from __future__ import annotations

from sqlmodel import select

from bot.i18n import t
from bot.models import Contact, Person, Role
from bot.services.org import invites
from bot.services.org.access import system_actor
from tests import factories as f

UID = 6101


async def seed(harness, *, zalo: bool = True, telegram: bool = True) -> Person:
    """Add a person of a unit, on Telegram (UID) and on Zalo when asked."""
    async with harness.maker() as s:
        unit = await f.unit(s, "VP", "Văn phòng Sở")
        person = await f.person(s, "ST01", unit, name="Nguyễn Văn An")
        await f.person(s, "AD01", unit, Role.ADMIN, name="Trần Văn Quản")
        if telegram:
            contact = await f.contact(s, str(UID), person)
            contact.last_seen_at = f.T0  # Zalo was never seen: messages go to Telegram
        if zalo:
            s.add(Contact(channel="zalo", external_id="z1", person_id=person.id, created_at=f.T0))
        await s.commit()
        return person


def buttons(harness) -> list[tuple[str, str]]:
    """Return the (label, data) of the buttons under the bot's last message."""
    markup = harness.api.calls[-1].params.get("reply_markup") or {}
    rows = markup.get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_me_shows_both_channels_with_the_one_messages_go_to_marked(bot_harness):
    await seed(bot_harness)
    text = (await bot_harness.send(UID, "/me"))[0]
    assert "Kênh đã liên kết: Telegram (kênh nhận tin chính), Zalo\n" in text
    assert text.endswith(t("me.channel_hint", "vi"))
    assert buttons(bot_harness) == [("Nhận tin qua Zalo", "chan:zalo")]


async def test_me_on_one_channel_marks_nothing_and_offers_no_button(bot_harness):
    await seed(bot_harness, zalo=False)
    text = (await bot_harness.send(UID, "/me"))[0]
    assert "Kênh đã liên kết: Telegram\nNgôn ngữ: Tiếng Việt" in text.replace("🇻🇳 ", "")
    assert buttons(bot_harness) == []


async def test_the_zalo_button_makes_zalo_preferred(bot_harness):
    await seed(bot_harness)
    await bot_harness.send(UID, "/me")
    texts = await bot_harness.press(UID, "chan:zalo")
    assert texts == ["Từ nay, đồng chí sẽ nhận tin qua Zalo."]
    async with bot_harness.maker() as s:
        person = (await s.exec(select(Person).where(Person.code == "ST01"))).one()
    assert person.preferred_channel == "zalo"
    text = (await bot_harness.send(UID, "/me"))[0]
    assert "Kênh đã liên kết: Telegram, Zalo (kênh nhận tin chính)\n" in text
    assert buttons(bot_harness) == [("Nhận tin qua Telegram", "chan:telegram")]


async def test_channel_command_switches_and_refuses_an_unlinked_channel(bot_harness):
    await seed(bot_harness, zalo=False)
    texts = await bot_harness.send(UID, "/channel zalo")
    assert texts == ["Đồng chí chưa liên kết kênh zalo. Các kênh đã liên kết: telegram."]
    assert await bot_harness.send(UID, "/channel TELEGRAM") == [
        "Từ nay, đồng chí sẽ nhận tin qua Telegram."
    ]
    async with bot_harness.maker() as s:
        person = (await s.exec(select(Person).where(Person.code == "ST01"))).one()
    assert person.preferred_channel == "telegram"


async def test_a_preferred_channel_that_cannot_be_used_is_noted_and_said(bot_harness, clock):
    await seed(bot_harness)
    async with bot_harness.maker() as s:
        zalo = (await s.exec(select(Contact).where(Contact.channel == "zalo"))).one()
        zalo.blocked_at = clock.now()
        s.add(zalo)
        await s.commit()
    texts = await bot_harness.send(UID, "/channel zalo")
    assert texts == [t("channel.unusable", "vi", name="Zalo", current="Telegram")]


async def test_a_citizen_cannot_choose_a_channel(bot_harness):
    await seed(bot_harness)
    assert await bot_harness.send(9001, "/channel zalo") == [t("errors.staff_only", "vi")]


async def test_an_invite_redeemed_on_a_second_channel_adds_it_and_says_so(bot_harness, clock):
    await seed(bot_harness, telegram=False)
    async with bot_harness.maker() as s:
        batch = await invites.create_invites(
            s, actor=system_actor("test"), now=clock.now(), valid_days=14, person_code="ST01"
        )
        await s.commit()
    texts = await bot_harness.send(UID, f"/start {batch.issued[0].code}")
    assert texts == [
        t(
            "start.linked_more",
            "vi",
            name="Nguyễn Văn An",
            unit="Văn phòng Sở",
            channels="Telegram (kênh nhận tin chính), Zalo",
        )
    ]
    async with bot_harness.maker() as s:
        linked = (await s.exec(select(Contact).order_by(Contact.channel))).all()
    assert [(str(c.channel), c.external_id, c.person_id is not None) for c in linked] == [
        ("telegram", str(UID), True),
        ("zalo", "z1", True),
    ]


async def test_admins_see_the_chosen_channel_in_people(bot_harness):
    person = await seed(bot_harness)
    async with bot_harness.maker() as s:
        admin = (await s.exec(select(Person).where(Person.code == "AD01"))).one()
        await f.contact(s, "6102", admin)
        row = await s.get(Person, person.id)
        row.preferred_channel = "zalo"
        s.add(row)
        await s.commit()
    text = (await bot_harness.send(6102, "/people VP"))[0]
    assert "Nguyễn Văn An – đã liên kết (Telegram, Zalo (kênh nhận tin chính))" in text
