"""Apologies for late dossiers: the sweep asks heads, the answer sends the slip to followers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.channels.render import plain, render
from bot.clock import FakeClock
from bot.messages import codec
from bot.models import Apology, ApologyStatus, Attachment, AuditLog, Outbox, Role, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.dossiers import apologies, dossiers
from bot.services.dossiers.apology_slip import Issuer, docx_text
from bot.services.dossiers.dossiers import DOSSIERS, import_dossiers
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org.access import Actor
from bot.services.org.imports import Table
from tests import factories as f

CAL = WorkCalendar()
ROW = {
    "code": "000.00.12.H10-261126-0004",
    "unit_code": "PGD1",
    "citizen_name": "Phạm Thu Dung",
    "phone": "0977888999",
    "received_on": "26/11/2026",
    "appointment_at": "07/12/2026",
    "status": "Đang xử lý",
}


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


async def setup(maker, clock, row=ROW):
    async with maker() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        pgd = await f.unit(s, "PGD1", "UBND phường Phước Long", parent=root)
        other = await f.unit(s, "PGD2", "UBND xã Bù Đăng", parent=root)
        head = await f.person(s, "HD", pgd, Role.UNIT_HEAD, name="Hoàng Minh Đức")
        await f.contact(s, "20", head)
        await f.contact(s, "30", await f.person(s, "ST", pgd, name="Cán Bộ"))
        await f.contact(s, "40", await f.person(s, "H2", other, Role.UNIT_HEAD, name="Khác"))
        await f.contact(s, "50", await f.person(s, "AD", root, Role.ADMIN, name="Quản Trị"))
        await import_dossiers(
            s, table=Table.from_records(DOSSIERS, [row]), actor="t", now=clock.now()
        )
        citizen = await f.contact(s, "900")
        await dossiers.follow(s, contact=citizen, code=ROW["code"], last4="8999", now=clock.now())
        await s.commit()


async def sweep_at(maker, clock: FakeClock, when: str) -> tuple[int, list[tuple[str, str]]]:
    clock.advance(hanoi(when) - clock.now())
    async with maker() as s:
        before = {r.id for r in (await s.exec(select(Outbox))).all()}
        count = await apologies.sweep(s, now=clock.now(), cal=CAL)
        await s.commit()
        rows = (await s.exec(select(Outbox).order_by(Outbox.id))).all()
        new = [(r.chat_id, codec.loads(r.payload).key) for r in rows if r.id not in before]
    return count, new


async def actor_of(s, code: str) -> Actor:
    from bot.models import Person
    from bot.services.org.access import roles_of

    person = (await s.exec(select(Person).where(Person.code == code))).one()
    return Actor(name=code, roles=await roles_of(s, person), person=person)


async def test_sweep_asks_one_working_day_ahead_over_the_weekend_and_only_once(maker, clock):
    await setup(maker, clock)
    assert await sweep_at(maker, clock, "2026-12-03T09:00") == (0, [])
    count, sent = await sweep_at(maker, clock, "2026-12-04T09:00")
    assert count == 1
    assert sent == [("20", "apology.ask")]
    async with maker() as s:
        row = (await s.exec(select(Outbox))).all()[-1]
        message = codec.loads(row.payload)
        apology = (await s.exec(select(Apology))).one()
        assert message.buttons[0][0].action == f"apology:{apology.id}"
        assert apology.status == ApologyStatus.ASKED
        assert apology.original_appointment_at == hanoi("2026-12-07T17:00")
    assert await sweep_at(maker, clock, "2026-12-07T09:00") == (0, [])
    assert await sweep_at(maker, clock, "2026-12-08T09:00") == (0, [])


async def test_a_new_appointment_gets_a_new_apology(maker, clock):
    await setup(maker, clock)
    assert (await sweep_at(maker, clock, "2026-12-04T09:00"))[0] == 1
    moved = {**ROW, "appointment_at": "10/12/2026"}
    async with maker() as s:
        table = Table.from_records(DOSSIERS, [moved])
        await import_dossiers(s, table=table, actor="t", now=clock.now())
        await s.commit()
    assert (await sweep_at(maker, clock, "2026-12-08T09:00"))[0] == 0
    assert (await sweep_at(maker, clock, "2026-12-09T09:00"))[0] == 1
    assert (await sweep_at(maker, clock, "2026-12-10T09:00"))[0] == 0
    async with maker() as s:
        assert len((await s.exec(select(Apology))).all()) == 2


async def test_done_dossiers_are_not_apologised_for_and_headless_units_go_to_admins(maker, clock):
    await setup(maker, clock, {**ROW, "status": "Đã có kết quả"})
    assert await sweep_at(maker, clock, "2026-12-04T09:00") == (0, [])
    async with maker() as s:
        table = Table.from_records(
            DOSSIERS, [{**ROW, "code": "HS-X", "unit_code": "SGD", "phone": ""}]
        )
        await import_dossiers(s, table=table, actor="t", now=clock.now())
        await s.commit()
    assert await sweep_at(maker, clock, "2026-12-04T10:00") == (1, [("50", "routing.for_admins")])
    async with maker() as s:
        row = (await s.exec(select(Outbox).order_by(Outbox.id.desc()))).first()
    message = codec.loads(row.payload)
    assert message.params["unit"] == "Sở Giáo dục và Đào tạo"
    assert message.params["message"].key == "apology.ask"
    assert message.buttons[0][0].action.startswith("apology:")


async def test_a_dossier_waiting_on_the_citizen_is_not_apologised_for(maker, clock):
    await setup(maker, clock, {**ROW, "status": "Chờ bổ sung"})
    assert await sweep_at(maker, clock, "2026-12-04T09:00") == (0, [])
    assert await sweep_at(maker, clock, "2026-12-09T09:00") == (0, [])  # even once late
    async with maker() as s:
        table = Table.from_records(DOSSIERS, [{**ROW, "status": "Đang xử lý"}])
        await import_dossiers(s, table=table, actor="t", now=clock.now())
        await s.commit()
    assert await sweep_at(maker, clock, "2026-12-09T10:00") == (1, [("20", "apology.ask")])


async def asked(maker, clock) -> int:
    await setup(maker, clock)
    await sweep_at(maker, clock, "2026-12-04T09:00")
    async with maker() as s:
        apology_id = (await s.exec(select(Apology))).one().id
        assert apology_id is not None
        return apology_id


async def test_only_the_units_head_or_an_admin_may_answer(maker, clock):
    apology_id = await asked(maker, clock)
    later = hanoi("2026-12-10T17:00")
    for code in ("ST", "H2"):
        async with maker() as s:
            with pytest.raises(PermissionDenied) as refused:
                await apologies.answer(
                    s,
                    actor=await actor_of(s, code),
                    apology_id=apology_id,
                    reason="Chờ xác minh",
                    new_return_at=later,
                    now=clock.now(),
                    cal=CAL,
                )
            assert refused.value.key == "apology.forbidden"
    async with maker() as s:
        done = await apologies.answer(
            s,
            actor=await actor_of(s, "AD"),
            apology_id=apology_id,
            reason="Chờ xác minh",
            new_return_at=later,
            now=clock.now(),
            cal=CAL,
        )
        assert done.status == ApologyStatus.SENT
        assert done.signed_by == "Hoàng Minh Đức"


async def test_the_new_date_must_be_after_now_and_the_appointment(maker, clock):
    apology_id = await asked(maker, clock)
    for bad in (hanoi("2026-12-04T08:00"), hanoi("2026-12-07T17:00")):
        async with maker() as s:
            with pytest.raises(InvalidInput) as refused:
                await apologies.answer(
                    s,
                    actor=await actor_of(s, "HD"),
                    apology_id=apology_id,
                    reason="Chờ xác minh",
                    new_return_at=bad,
                    now=clock.now(),
                    cal=CAL,
                )
            assert refused.value.key == "apology.bad_new_date"
    async with maker() as s:
        with pytest.raises(InvalidInput) as empty:
            await apologies.answer(
                s,
                actor=await actor_of(s, "HD"),
                apology_id=apology_id,
                reason="  ",
                new_return_at=hanoi("2026-12-10T17:00"),
                now=clock.now(),
                cal=CAL,
            )
        assert empty.value.key == "apology.reason_required"


async def test_answer_sends_the_slip_to_the_follower(maker, clock):
    apology_id = await asked(maker, clock)
    reason = "Hồ sơ cần xác minh văn bằng gốc tại trường cấp"
    async with maker() as s:
        done = await apologies.answer(
            s,
            actor=await actor_of(s, "HD"),
            apology_id=apology_id,
            reason=reason,
            new_return_at=hanoi("2026-12-10T15:00"),
            now=clock.now(),
            cal=CAL,
            issuer=Issuer("Sở Giáo dục và Đào tạo tỉnh Đồng Nai", "SGDĐT", "Đồng Nai"),
        )
        await s.commit()
        assert (done.number, done.number_year) == (1, 2026)
        assert done.sent_at == clock.now()
        assert done.answered_by == "person:HD"
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "apology"))).all()
        assert [r.chat_id for r in rows] == ["900"]
        message = codec.loads(rows[0].payload)
        assert message.key == "apology.to_citizen"
        chat = render(message, "vi", escape=plain)
        assert "số 01/PXL-SGDĐT" in chat
        assert "17 giờ 00, ngày 07/12/2026" in chat
        assert "15 giờ 00, ngày 10/12/2026" in chat
        assert message.attachment_id == done.document_id
        document = await s.get(Attachment, done.document_id)
        assert document is not None
        assert document.file_name.endswith(".docx")
        text = docx_text(document.data)
        for part in (
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "Độc lập - Tự do - Hạnh phúc",
            "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ",
            "SỞ GIÁO DỤC VÀ ĐÀO TẠO TỈNH ĐỒNG NAI\nUBND PHƯỜNG PHƯỚC LONG\nSố: 01/PXL-SGDĐT",
            "Kính gửi: Ông/Bà/Tổ chức Phạm Thu Dung",
            "Mã hồ sơ: 000.00.12.H10-261126-0004",
            "Ngày 26/11/2026",
            "ghi trên Giấy tiếp nhận hồ sơ và hẹn trả kết quả: 17 giờ 00, ngày 07/12/2026.",
            reason,
            "thành thật xin lỗi",
            "vào 15 giờ 00, ngày 10/12/2026.",
            "Độc lập - Tự do - Hạnh phúc\nĐồng Nai, ngày 04 tháng 12 năm 2026",
            "THỦ TRƯỞNG ĐƠN VỊ",
            "Hoàng Minh Đức",
        ):
            assert part in text, part
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "apology.sent"))).one()
        assert audit.count == 1
        slip = await apologies.slip_document(s, apology_id=apology_id)
        assert slip.id == done.document_id
    async with maker() as s:
        with pytest.raises(InvalidInput):
            await apologies.answer(
                s,
                actor=await actor_of(s, "HD"),
                apology_id=apology_id,
                reason=reason,
                new_return_at=hanoi("2026-12-11T15:00"),
                now=clock.now(),
                cal=CAL,
            )


async def test_counts_by_unit(maker, clock):
    await setup(maker, clock)
    await sweep_at(maker, clock, "2026-12-04T09:00")
    async with maker() as s:
        counts = await apologies.counts_by_unit(
            s, since=hanoi("2026-12-01T00:00"), until=hanoi("2026-12-31T00:00")
        )
        assert [(u.code, n) for u, n in counts] == [("PGD1", 1)]
        none = await apologies.counts_by_unit(
            s, since=hanoi("2026-12-05T00:00"), until=hanoi("2026-12-31T00:00")
        )
        assert none == []


def test_cli_prints_an_answered_slip(tmp_path, monkeypatch):
    import asyncio

    from typer.testing import CliRunner

    from bot.cli.dossiers import apology_app
    from bot.db import create_engine, session_maker
    from bot.services.directives import attachments

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    runner = CliRunner()
    out = tmp_path / "slip.docx"
    assert runner.invoke(apology_app, ["print", "1", "--out", str(out)]).exit_code == 1

    async def seed() -> None:
        engine = create_engine(url)
        async with session_maker(engine)() as s:
            pgd = await f.unit(s, "PGD1")
            now = hanoi("2026-12-04T09:00")
            doc = attachments.store(s, name="phieu.docx", data=b"DOCX", now=now)
            await _dossier(s, pgd.id, now)
            s.add(
                Apology(
                    dossier_id=1,
                    unit_id=pgd.id,
                    original_appointment_at=now,
                    status=ApologyStatus.SENT,
                    asked_at=now,
                    document_id=doc.id,
                )
            )
            await s.commit()
        await engine.dispose()

    asyncio.run(seed())
    result = runner.invoke(apology_app, ["print", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"DOCX"


async def _dossier(s, unit_id, now) -> None:
    from bot.models import Dossier

    s.add(
        Dossier(
            id=1,
            code="HS-1",
            unit_id=unit_id,
            citizen_name="A",
            received_on=now.date(),
            appointment_at=now,
            status="processing",
            created_at=now,
            updated_at=now,
        )
    )
    await s.flush()


async def make(s, clock, new_date: str, **kw):
    return await apologies.make_for_dossier(
        s,
        actor=await actor_of(s, "AD"),
        code=ROW["code"].lower(),
        reason="Chờ kết quả xác minh",
        new_return_at=hanoi(new_date),
        now=clock.now(),
        cal=CAL,
        **kw,
    )


async def test_made_for_a_dossier_on_a_day_off_is_refused_naming_the_next_working_day(maker, clock):
    await setup(maker, clock)
    async with maker() as s:
        with pytest.raises(InvalidInput) as info:
            await make(s, clock, "2026-12-12T09:00")  # a Saturday
        assert info.value.key == "calendar.not_working_weekend"
        assert info.value.params == {"day": "12/12/2026", "next_day": "14/12/2026", "holiday": ""}
        assert (await s.exec(select(Apology))).all() == []


async def test_made_for_a_dossier_moves_to_the_next_working_day_and_reaches_the_follower(
    maker, clock
):
    await setup(maker, clock)
    async with maker() as s:
        made = await make(s, clock, "2026-12-12T09:00", move_to_working_day=True)
        await s.commit()
        assert made.queued == 1
        assert made.dossier.code == ROW["code"]
        assert made.apology.status == ApologyStatus.SENT
        assert made.apology.new_return_at == hanoi("2026-12-14T09:00")
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "apology"))).all()
        assert [(r.chat_id, r.ref_id) for r in rows] == [("900", made.apology.id)]


async def test_made_for_a_dossier_answers_the_apology_the_sweep_asked_for(maker, clock):
    apology_id = await asked(maker, clock)
    async with maker() as s:
        made = await make(s, clock, "2026-12-10T15:00")
        await s.commit()
        assert made.apology.id == apology_id
        assert len((await s.exec(select(Apology))).all()) == 1
    async with maker() as s:
        with pytest.raises(InvalidInput) as info:
            await make(s, clock, "2026-12-11T15:00")
        assert info.value.key == "apology.already_sent"


async def test_made_for_an_unknown_dossier_is_refused(maker, clock):
    await setup(maker, clock)
    async with maker() as s:
        with pytest.raises(NotFound) as info:
            await apologies.make_for_dossier(
                s,
                actor=await actor_of(s, "AD"),
                code="NOPE-1",
                reason="x",
                new_return_at=hanoi("2026-12-10T15:00"),
                now=clock.now(),
                cal=CAL,
            )
        assert info.value.params == {"code": "NOPE-1"}


async def test_slip_numbers_count_from_one_each_year(maker, clock):
    apology_id = await asked(maker, clock)
    async with maker() as s:
        row = await s.get(Apology, apology_id)
        row.number, row.number_year = 7, 2026
        s.add(row)
        await s.commit()
        assert await apologies.next_number(s, 2026) == 8
        assert await apologies.next_number(s, 2027) == 1
