"""Broadcasts: segments, opting out, scheduling, progress, cancelling, and the chat flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.channels.render import render
from bot.i18n import t
from bot.messages import codec
from bot.models import AuditLog, Broadcast, Outbox, OutboxStatus, Role, UnitKind
from bot.services.directives import broadcasts
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor, system_actor
from tests import factories as f
from tests import tg

ADMIN_ACTOR = system_actor("test")
ADMIN, HEAD, STAFF, OPTOUT, CITIZEN, CITIZEN_OUT = 8001, 8002, 8003, 8004, 8005, 8006


async def seed(s):
    root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
    d1 = await f.unit(s, "PGD1", "Phòng 1", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    d2 = await f.unit(s, "PGD2", "Phòng 2", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    await f.contact(s, str(ADMIN), await f.person(s, "AD", root, Role.ADMIN))
    await f.contact(s, str(HEAD), await f.person(s, "HD", d1, Role.UNIT_HEAD))
    await f.contact(s, str(STAFF), await f.person(s, "ST", d2))
    out = await f.contact(s, str(OPTOUT), await f.person(s, "OU", d2))
    await f.contact(s, str(CITIZEN))
    cit_out = await f.contact(s, str(CITIZEN_OUT))
    out.opted_out = cit_out.opted_out = True
    s.add_all([out, cit_out])
    await s.flush()


async def chats(s, broadcast_id: int) -> list[str]:
    rows = (
        await s.exec(
            select(Outbox).where(Outbox.ref_id == broadcast_id, Outbox.kind == "broadcast")
        )
    ).all()
    return sorted(r.chat_id for r in rows)


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (broadcasts.Segment(), {ADMIN, HEAD, STAFF}),
        (broadcasts.Segment(roles=(Role.UNIT_HEAD,)), {HEAD}),
        (broadcasts.Segment(units=("PGD2",)), {STAFF}),
        (broadcasts.Segment(kinds=(UnitKind.DISTRICT_OFFICE,)), {HEAD, STAFF}),
        (broadcasts.Segment(subtree="SGD"), {ADMIN, HEAD, STAFF}),
        (broadcasts.Segment(staff=False, citizens=True), {CITIZEN}),
        (broadcasts.Segment(citizens=True), {ADMIN, HEAD, STAFF, CITIZEN}),
    ],
)
async def test_segments_never_reach_those_who_opted_out(maker, clock, segment, expected):
    async with maker() as s:
        await seed(s)
        row = await broadcasts.create(
            s,
            actor=ADMIN_ACTOR,
            text_html="<b>Lịch</b> họp",
            segment=segment,
            label="x",
            send_at=clock.now(),
            now=clock.now(),
        )
        assert await chats(s, row.id) == sorted(str(c) for c in expected)
        assert row.total == len(expected)


async def test_schedule_progress_and_cancel(maker, clock):
    later = clock.now() + timedelta(hours=3)
    async with maker() as s:
        await seed(s)
        row = await broadcasts.create(
            s,
            actor=ADMIN_ACTOR,
            text_html="Khảo sát",
            segment=broadcasts.Segment(),
            label="staff",
            send_at=later,
            now=clock.now(),
        )
        rows = (await s.exec(select(Outbox))).all()
        assert {r.due_at for r in rows} == {later}
        rows[0].status = OutboxStatus.SENT
        s.add(rows[0])
        await s.flush()
        progress = await broadcasts.cancel(
            s, actor=ADMIN_ACTOR, broadcast_id=row.id, now=clock.now()
        )
        assert (progress.sent, progress.pending, progress.cancelled) == (1, 0, 2)
        again = await broadcasts.cancel(s, actor=ADMIN_ACTOR, broadcast_id=row.id, now=clock.now())
        assert again.cancelled == 2
        actions = [a.action for a in (await s.exec(select(AuditLog))).all()]
        assert actions == ["broadcast.create", "broadcast.cancel"]


async def test_refusals(maker, clock):
    staff = Actor(name="s", roles=frozenset({Role.STAFF}))
    async with maker() as s:
        await seed(s)
        with pytest.raises(PermissionDenied):
            await broadcasts.create(
                s,
                actor=staff,
                text_html="x",
                segment=broadcasts.Segment(),
                label="x",
                send_at=clock.now(),
                now=clock.now(),
            )
        with pytest.raises(InvalidInput) as info:
            await broadcasts.create(
                s,
                actor=ADMIN_ACTOR,
                text_html="x" * 5000,
                segment=broadcasts.Segment(),
                label="x",
                send_at=clock.now(),
                now=clock.now(),
            )
        assert info.value.key == "broadcast.error.too_long"
        assert (await s.exec(select(Broadcast))).first() is None


@pytest.fixture
async def org(bot_harness):
    async with bot_harness.maker() as s:
        await seed(s)
        await s.commit()
    return bot_harness


async def test_admin_broadcasts_formatted_text_in_chat(org):
    await org.send(ADMIN, "/broadcast")
    update = tg.text_update(ADMIN, "Họp giao ban lúc 8 giờ")
    update["message"]["entities"] = [{"type": "bold", "offset": 0, "length": 12}]
    org.api.clear()
    await org.feed(update)
    assert org.api.texts() == [t("broadcast.flow.ask_segment", "vi")]
    await org.choose(ADMIN, "staff")
    preview, confirm = await org.choose(ADMIN, "now")
    assert preview == "📢 <b>Họp giao ban</b> lúc 8 giờ"
    assert "3 người" in confirm
    created = await org.choose(ADMIN, "send")
    assert created[0].startswith("Đã xếp lịch thông báo #1 tới 3 người nhận")
    async with org.maker() as s:
        row = (await s.exec(select(Outbox))).first()
    assert render(codec.loads(row.payload), "vi") == preview


async def test_broadcasts_list_and_cancel_with_confirmation(org):
    await org.send(ADMIN, "/broadcast")
    await org.send(ADMIN, "Khảo sát ý kiến")
    await org.choose(ADMIN, "everyone")
    await org.send(ADMIN, "31/12/2030 08:00")
    await org.choose(ADMIN, "send")
    listing = await org.send(ADMIN, "/broadcasts")
    assert "#1 [đã hẹn giờ] Tất cả, " in listing[0]
    assert "everyone" not in listing[0]
    assert "đã gửi 0/4" in listing[0]
    markup = org.api.sent()[0]["reply_markup"]
    assert markup["inline_keyboard"][0][0]["callback_data"] == "bcancel:1"
    ask = await org.press(ADMIN, "bcancel:1")
    assert ask == [t("broadcast.cancel_ask", "vi", id=1)]
    done = await org.press(ADMIN, "bcancel:1:yes")
    assert done == [t("broadcast.cancelled", "vi", id=1, sent=0, stopped=4)]
    async with org.maker() as s:
        statuses = {r.status for r in (await s.exec(select(Outbox))).all()}
    assert statuses == {OutboxStatus.CANCELLED}
    assert await org.press(STAFF, "bcancel:1:yes") == [t("errors.forbidden", "vi")]


async def test_send_now_in_the_quiet_hours_asks_first(org, clock):
    clock.advance(timedelta(hours=14, minutes=30))  # 22:30 in Hanoi
    await org.send(ADMIN, "/broadcast")
    await org.send(ADMIN, "Họp giao ban")
    await org.choose(ADMIN, "staff")
    asked = await org.choose(ADMIN, "now")
    assert asked == [
        t("broadcast.flow.quiet_ask", "vi", start="21:00", end="07:00", at="07:00 01/12/2026")
    ]
    labels = [
        b["text"] for row in org.api.sent()[-1]["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert "1. " + t("broadcast.flow.quiet_later", "vi", at="07:00 01/12/2026") in labels
    assert "2. " + t("broadcast.flow.quiet_anyway", "vi") in labels
    async with org.maker() as s:
        assert (await s.exec(select(Broadcast))).first() is None
    _, confirm = await org.choose(ADMIN, "later")
    assert "từ 07:00 01/12/2026" in confirm
    await org.choose(ADMIN, "send")
    async with org.maker() as s:
        row = (await s.exec(select(Broadcast))).one()
    assert row.send_at == clock.now() + timedelta(hours=8, minutes=30)
    await org.send(ADMIN, "/broadcast")
    await org.send(ADMIN, "Khẩn")
    await org.choose(ADMIN, "staff")
    await org.choose(ADMIN, "now")
    _, confirm = await org.choose(ADMIN, "anyway")
    assert "từ 22:30 30/11/2026" in confirm


async def test_a_broadcast_to_typed_units_is_listed_by_their_names(org):
    await org.send(ADMIN, "/broadcast")
    await org.send(ADMIN, "Lịch trực Tết")
    await org.choose(ADMIN, "units")
    await org.send(ADMIN, "PGD2")
    await org.send(ADMIN, "31/12/2030 08:00")
    await org.choose(ADMIN, "send")
    listing = await org.send(ADMIN, "/broadcasts")
    assert "#1 [đã hẹn giờ] Phòng 2, " in listing[0]
    assert "PGD2" not in listing[0]
