"""Dossiers in chat: a citizen follows one; the head writes the apology from the request."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.i18n import t
from bot.messages import codec
from bot.models import Apology, ApologyStatus, Dossier, DossierStatus, Outbox, Role, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.dossiers import apologies
from bot.services.errors import InvalidInput
from tests import factories as f
from tests.test_apologies import actor_of

CITIZEN, HEAD, STAFF = 9601, 9602, 9603


@pytest.fixture
async def desk(bot_harness, clock):
    """A one-stop desk, its head, and a dossier due tomorrow."""
    async with bot_harness.maker() as s:
        unit = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        await f.contact(s, str(HEAD), await f.person(s, "HD", unit, Role.UNIT_HEAD, name="Hạnh"))
        await f.contact(s, str(STAFF), await f.person(s, "ST", unit))
        s.add(
            Dossier(
                code="HS-2026-01",
                unit_id=unit.id,
                citizen_name="Nguyễn Văn Dân",
                phone="0912345678",
                received_on=date(2026, 11, 20),
                appointment_at=clock.now() + timedelta(days=1),
                status=DossierStatus.PROCESSING,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await s.commit()
    return bot_harness


async def test_citizen_follows_with_the_phone_digits(desk):
    await desk.send(CITIZEN, "/follow")
    await desk.send(CITIZEN, "HS-2026-01")
    wrong = await desk.send(CITIZEN, "0000")
    assert wrong[0] == t("dossier.follow.wrong_digits", "vi", left=4)
    done = await desk.send(CITIZEN, "5678")
    assert done[0] == t("dossier.flow.following", "vi")
    assert "HS-2026-01" in done[1]


async def test_head_writes_the_apology_and_the_citizen_gets_the_slip(desk, clock):
    await desk.send(CITIZEN, "/follow")
    await desk.send(CITIZEN, "HS-2026-01")
    await desk.send(CITIZEN, "5678")
    async with desk.maker() as s:
        assert await apologies.sweep(s, now=clock.now(), cal=WorkCalendar()) == 1
        await s.commit()
        apology = (await s.exec(select(Apology))).one()
        ask = (await s.exec(select(Outbox).where(Outbox.chat_id == str(HEAD)))).one()
    action = codec.loads(ask.payload).buttons[0][0].action
    assert action == f"apology:{apology.id}"
    assert await desk.press(STAFF, action) == [t("errors.forbidden", "vi")]
    await desk.press(HEAD, action)
    await desk.send(HEAD, "Chờ xác minh văn bằng tại trường cấp")
    past = await desk.send(HEAD, "01/01/2020")
    assert past[0].startswith("Ngày hẹn trả lại phải sau")
    new_date = WorkCalendar().local(clock.now() + timedelta(days=10)).strftime("%d/%m/%Y")
    confirm = await desk.send(HEAD, new_date)
    assert f"Ngày hẹn trả mới: 17:00 {new_date}" in confirm[0]
    sent = await desk.choose(HEAD, "send")
    assert sent[0].startswith(f"Đã gửi phiếu xin lỗi số {apology.id} tới người dân")
    async with desk.maker() as s:
        row = await s.get(Apology, apology.id)
        slip = (
            await s.exec(
                select(Outbox).where(Outbox.chat_id == str(CITIZEN), Outbox.kind != "dossier")
            )
        ).all()
    assert row.status == ApologyStatus.SENT
    assert row.reason == "Chờ xác minh văn bằng tại trường cấp"
    message = codec.loads(slip[-1].payload)
    assert message.key == "apology.to_citizen"
    assert message.attachment_id == row.document_id


def buttons(desk) -> list[tuple[str, str]]:
    """Return the (label, data) of every inline button the bot last sent."""
    rows = desk.api.sent()[-1]["reply_markup"]["inline_keyboard"]
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def _open_apology(desk, clock) -> Apology:
    """Sweep the due dossier and open the head's apology flow up to the new date."""
    async with desk.maker() as s:
        assert await apologies.sweep(s, now=clock.now(), cal=WorkCalendar()) == 1
        await s.commit()
        apology = (await s.exec(select(Apology))).one()
    await desk.press(HEAD, f"apology:{apology.id}")
    await desk.send(HEAD, "Chờ xác minh văn bằng")
    return apology


async def test_a_new_return_date_on_a_saturday_is_moved_only_when_the_head_chooses(desk, clock):
    await desk.send(CITIZEN, "/follow")
    await desk.send(CITIZEN, "HS-2026-01")
    await desk.send(CITIZEN, "5678")
    apology = await _open_apology(desk, clock)
    held = await desk.send(HEAD, "12/12/2026")  # a Saturday
    reason = t("calendar.not_working_weekend", "vi", day="12/12/2026", next_day="14/12/2026")
    assert held[0] == t("calendar.flow.ask_move", "vi", reason=reason, next_day="14/12/2026")
    labels = [label for label, _ in buttons(desk)]
    assert "1. " + t("calendar.flow.move", "vi", next_day="14/12/2026") in labels
    assert "2. " + t("calendar.flow.other", "vi") in labels
    again = await desk.choose(HEAD, "other")
    assert again[0] == t("dossier.flow.ask_new_date", "vi")
    await desk.send(HEAD, "12/12/2026 09:00")
    confirm = await desk.choose(HEAD, "move")
    assert "Ngày hẹn trả mới: 09:00 14/12/2026" in confirm[0]
    async with desk.maker() as s:
        assert (await s.get(Apology, apology.id)).status == ApologyStatus.ASKED
    await desk.choose(HEAD, "send")
    async with desk.maker() as s:
        row = await s.get(Apology, apology.id)
    assert row.status == ApologyStatus.SENT
    assert WorkCalendar().local(row.new_return_at).date() == date(2026, 12, 14)


async def test_a_holiday_is_refused_by_the_apology_service(desk, clock):
    apology = await _open_apology(desk, clock)
    async with desk.maker() as s:
        row = await s.get(Apology, apology.id)
        tet = WorkCalendar().at_local(date(2027, 2, 8), "17:00")  # the third day of Tết
        with pytest.raises(InvalidInput) as info:
            await apologies.answer(
                s,
                actor=await actor_of(s, "HD"),
                apology_id=row.id,
                reason="Chờ xác minh",
                new_return_at=tet,
                now=clock.now(),
                cal=WorkCalendar(),
            )
    assert info.value.key == "calendar.not_working_holiday"
    assert info.value.params["next_day"] == "11/02/2027"
    assert "Mùng ba Tết" in info.value.params["holiday"]


async def test_without_a_follower_the_head_is_told_to_print_the_slip(desk, clock):
    apology = await _open_apology(desk, clock)
    confirm = await desk.send(HEAD, "14/12/2026")
    assert t("dossier.flow.apology_no_follower", "vi") in confirm[0]
    done = await desk.choose(HEAD, "send")
    assert not done[0].startswith("Đã gửi phiếu xin lỗi")
    assert done[0] == t(
        "dossier.flow.apology_not_sent",
        "vi",
        id=apology.id,
        new_date="17:00 14/12/2026",
        code="HS-2026-01",
        name="Nguyễn Văn Dân",
    )
    async with desk.maker() as s:
        rows = (await s.exec(select(Outbox).where(Outbox.ref_id == apology.id))).all()
        row = await s.get(Apology, apology.id)
    copies = [r for r in rows if r.kind == "apology_copy"]
    assert [r.kind for r in rows if r.kind == "apology"] == []
    assert [r.chat_id for r in copies] == [str(HEAD)]
    assert codec.loads(copies[0].payload).attachment_id == row.document_id
