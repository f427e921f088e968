"""The dossier registry: import, re-import notices to followers, following with the phone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.render import plain, render
from bot.messages import codec
from bot.models import AuditLog, Dossier, DossierFollower, DossierStatus, Outbox, Procedure
from bot.services.dossiers import dossiers
from bot.services.dossiers.dossiers import DOSSIERS, import_dossiers
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org.imports import Table, read_table
from tests import factories as f

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dossiers.csv"
ROW = {
    "code": "HS-001",
    "procedure_code": "1.000181",
    "unit_code": "",
    "citizen_name": "Nguyễn Văn An",
    "phone": "0912 345 678",
    "received_on": "20/11/2026",
    "appointment_at": "02/12/2026",
    "status": "Đang xử lý",
}


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


async def seed(s) -> None:
    """Add the one-stop unit and two procedures it handles."""
    desk = await f.unit(s, "SGD.MOTCUA", "Bộ phận Một cửa Sở GD&ĐT")
    for code, name in (("1.000181", "Cấp bản sao văn bằng"), ("1.000191", "Chỉnh sửa văn bằng")):
        s.add(Procedure(code=code, name=name, unit_id=desk.id, created_at=f.T0, updated_at=f.T0))
    await s.flush()


def table(*rows: dict[str, str]) -> Table:
    return Table.from_records(DOSSIERS, rows)


async def load(s, code: str) -> Dossier:
    return (await s.exec(select(Dossier).where(Dossier.code == code))).one()


async def test_example_file_imports_and_defaults_the_time(maker, clock):
    async with maker() as s:
        await seed(s)
        report = await import_dossiers(
            s, table=read_table(EXAMPLE, spec=DOSSIERS), actor="t", now=clock.now()
        )
        await s.commit()
        assert report.ok
        assert report.created == 4
        first = await load(s, "000.00.12.H10-261120-0001")
        assert first.status == DossierStatus.RETURNED
        assert first.returned_at == clock.now()
        assert first.phone == "0912345678"
        assert first.received_on == date(2026, 11, 20)
        assert first.appointment_at == hanoi("2026-11-27T17:00")
        second = await load(s, "000.00.12.H10-261123-0002")
        assert second.appointment_at == hanoi("2026-12-02T16:30")
        assert second.phone == "0903111222"
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "import.dossiers"))).one()
        assert audit.count == 4


async def test_broken_rows_are_reported_and_nothing_is_written(maker, clock):
    bad = [
        {**ROW, "code": "HS 1"},
        {**ROW, "code": "HS-2", "procedure_code": "9.999"},
        {**ROW, "code": "HS-3", "procedure_code": "", "received_on": "31/02/2026"},
        {**ROW, "code": "HS-4", "status": "Lạc đâu mất", "citizen_name": ""},
        {**ROW, "code": "HS-5", "appointment_at": "03/12/2026 25:00", "phone": "123"},
        ROW,
        ROW,
    ]
    async with maker() as s:
        await seed(s)
        report = await import_dossiers(s, table=table(*bad), actor="t", now=clock.now())
        found = [(p.row, p.key) for p in report.problems]
        assert found == [
            (2, "dossier.import.bad_code"),
            (3, "dossier.import.unknown_procedure"),
            (4, "dossier.import.unit_required"),
            (4, "dossier.import.bad_date"),
            (5, "import.error.required"),
            (5, "dossier.import.unknown_status"),
            (6, "import.error.bad_phone"),
            (6, "dossier.import.bad_date"),
            (8, "import.error.duplicate_code"),
        ]
        assert (await s.exec(select(Dossier))).all() == []
        assert (await s.exec(select(AuditLog))).all() == []


async def test_dry_run_writes_nothing(maker, clock):
    async with maker() as s:
        await seed(s)
        report = await import_dossiers(
            s, table=table(ROW), actor="t", now=clock.now(), dry_run=True
        )
        assert report.ok
        assert report.dry_run
        assert report.created == 1
        assert (await s.exec(select(Dossier))).all() == []


async def test_reimport_updates_and_notifies_followers_in_their_language(maker, clock):
    async with maker() as s:
        await seed(s)
        await import_dossiers(s, table=table(ROW), actor="t", now=clock.now())
        citizen = await f.contact(s, "900")
        other = await f.contact(s, "901")
        await dossiers.follow(s, contact=citizen, code="hs-001", last4="5678", now=clock.now())
        await s.commit()
    clock.advance(timedelta(days=1))
    later = {**ROW, "appointment_at": "04/12/2026 10:00", "status": "Đã có kết quả"}
    async with maker() as s:
        again = await import_dossiers(s, table=table(later), actor="t", now=clock.now())
        await s.commit()
        assert (again.updated, again.created) == (1, 0)
        dossier = await load(s, "HS-001")
        assert dossier.status == DossierStatus.DONE
        assert dossier.appointment_at == hanoi("2026-12-04T10:00")
        rows = (await s.exec(select(Outbox))).all()
        assert [r.chat_id for r in rows] == ["900"]
        assert other.external_id == "901"
        text = render(codec.loads(rows[0].payload), "vi", escape=plain)
        assert "HS-001" in text
        assert "Đã có kết quả" in text
        follower = (await s.exec(select(DossierFollower))).one()
        assert follower.last_status == "done"
    async with maker() as s:
        same = await import_dossiers(s, table=table(later), actor="t", now=clock.now())
        assert same.unchanged == 1
        assert len((await s.exec(select(Outbox))).all()) == 1


async def test_an_appointment_change_alone_sends_no_notice(maker, clock):
    async with maker() as s:
        await seed(s)
        await import_dossiers(s, table=table(ROW), actor="t", now=clock.now())
        await dossiers.follow(
            s, contact=await f.contact(s, "900"), code="HS-001", last4="5678", now=clock.now()
        )
        moved = {**ROW, "appointment_at": "09/12/2026"}
        await import_dossiers(s, table=table(moved), actor="t", now=clock.now())
        assert (await s.exec(select(Outbox))).all() == []


async def imported(maker, clock, *rows):
    async with maker() as s:
        await seed(s)
        await import_dossiers(s, table=table(*rows), actor="t", now=clock.now())
        await f.contact(s, "900")
        await s.commit()


async def citizen(s):
    from bot.models import Contact

    return (await s.exec(select(Contact).where(Contact.external_id == "900"))).one()


async def test_follow_with_the_right_digits(maker, clock):
    await imported(maker, clock, ROW)
    async with maker() as s:
        dossier = await dossiers.follow(
            s, contact=await citizen(s), code=" hs-001 ", last4="5678", now=clock.now()
        )
        await s.commit()
        assert dossier.code == "HS-001"
        text = render(dossiers.status_message(dossier), "en", escape=plain)
        assert "HS-001" in text
        assert "In progress" in text
        assert "17:00 02/12/2026" in text


async def test_wrong_digits_unknown_codes_and_the_daily_limit(maker, clock):
    await imported(maker, clock, ROW)
    left = []
    for attempt in range(5):
        async with maker() as s:
            contact = await citizen(s)
            if attempt == 2:
                with pytest.raises(NotFound) as missing:
                    await dossiers.follow(
                        s, contact=contact, code="HS-9", last4="5678", now=clock.now()
                    )
                assert missing.value.key == "dossier.follow.not_found"
            else:
                with pytest.raises(InvalidInput) as wrong:
                    await dossiers.follow(
                        s, contact=contact, code="HS-001", last4="0000", now=clock.now()
                    )
                assert wrong.value.key == "dossier.follow.wrong_digits"
                left.append(wrong.value.params["left"])
            await s.commit()
    assert left == [4, 3, 1, 0]
    async with maker() as s:
        with pytest.raises(PermissionDenied) as refused:
            await dossiers.follow(
                s, contact=await citizen(s), code="HS-001", last4="5678", now=clock.now()
            )
        assert refused.value.key == "dossier.follow.too_many"
        assert (await s.exec(select(DossierFollower))).all() == []
    clock.advance(timedelta(days=1))
    async with maker() as s:
        await dossiers.follow(
            s, contact=await citizen(s), code="HS-001", last4="5678", now=clock.now()
        )


async def test_a_dossier_without_a_phone_cannot_be_followed(maker, clock):
    await imported(maker, clock, {**ROW, "phone": ""})
    async with maker() as s:
        with pytest.raises(InvalidInput) as refused:
            await dossiers.follow(
                s, contact=await citizen(s), code="HS-001", last4="5678", now=clock.now()
            )
        assert refused.value.key == "dossier.follow.no_phone"


@pytest.mark.parametrize(
    ("label", "status"),
    [
        ("Đã tiếp nhận", DossierStatus.RECEIVED),
        ("đang xử lý", DossierStatus.PROCESSING),
        ("Chờ bổ sung", DossierStatus.ADDITIONAL),
        ("Đã có kết quả", DossierStatus.DONE),
        ("Đã trả kết quả", DossierStatus.RETURNED),
        ("Đã hủy", DossierStatus.CANCELLED),
        ("Đã huỷ", DossierStatus.CANCELLED),
        ("returned", DossierStatus.RETURNED),
        ("In progress", DossierStatus.PROCESSING),
    ],
)
def test_status_labels(label, status):
    assert dossiers.parse_status(label) == status
