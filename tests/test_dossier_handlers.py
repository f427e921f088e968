"""Dossiers in chat: a citizen follows one; the head writes the apology from the request."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import select

import handlers.router  # noqa: F401
from bot.channels import codec
from bot.i18n import t
from bot.models import Apology, ApologyStatus, Dossier, DossierStatus, Outbox, Role, UnitKind
from bot.services import apologies
from bot.services.calendar import WorkCalendar
from tests import factories as f

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
    sent = await desk.send(HEAD, new_date)
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
