"""Weekly digests: a unit head's work, the leadership overview, once per cron fire."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import select

from bot.channels.render import plain, render, strip_html
from bot.config import Settings, TaskSettings
from bot.db import create_engine, session_maker
from bot.messages import codec
from bot.models import (
    Audience,
    Directive,
    DirectiveRecipient,
    JobLease,
    Outbox,
    Role,
    Unit,
    UnitKind,
)
from bot.services import digests
from bot.services.calendar import WorkCalendar
from bot.services.org.access import system_actor
from bot.services.tasks import tasks
from tests import factories as f

ADMIN = system_actor("test")
CAL = WorkCalendar()
SETTINGS = TaskSettings()
TZ = CAL.tz
WEEKLY = "30 7 * * mon"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


CREATED = hanoi("2026-11-16 09:00")
DIGEST = hanoi("2026-12-07 07:30")  # a Monday


async def assign(s, title: str, units: tuple[str, ...], due: str) -> list[int]:
    new = tasks.NewTask(title=title, units=units, due_at=hanoi(due))
    _, rows = await tasks.create(s, actor=ADMIN, new=new, now=CREATED, cal=CAL, settings=SETTINGS)
    return [r.id for r in rows]


async def directive(s, number: str, *, closed: bool = False) -> Directive:
    row = Directive(
        number=number,
        issued_on=date(2026, 11, 20),
        title=f"Công văn {number}",
        summary="…",
        audience=Audience.EVERYONE,
        target="all",
        ack_deadline=hanoi("2026-11-24 17:00"),
        created_by="test",
        created_at=hanoi("2026-11-20 08:00"),
        closed_at=hanoi("2026-12-01 08:00") if closed else None,
    )
    s.add(row)
    await s.flush()
    return row


async def seed(maker) -> None:
    """Four district offices: A busy, B late, C clear, D late with no head; a leader, an admin."""
    async with maker() as s:
        root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
        units = {}
        for code in "ABCD":
            units[code] = await f.unit(
                s, f"PGD.{code}", f"Phòng GD&ĐT {code}", kind=UnitKind.DISTRICT_OFFICE, parent=root
            )
        await f.contact(s, "10", await f.person(s, "LD", root, Role.LEADER))
        await f.contact(s, "11", await f.person(s, "AD", root, Role.ADMIN, Role.STAFF))
        head_a = await f.person(s, "HA", units["A"], Role.UNIT_HEAD)
        staff_a = await f.person(s, "SA", units["A"])
        head_b = await f.person(s, "HB", units["B"], Role.UNIT_HEAD)
        await f.contact(s, "100", head_a)
        await f.contact(s, "101", staff_a)
        await f.contact(s, "200", head_b)
        await f.contact(s, "300", await f.person(s, "HC", units["C"], Role.UNIT_HEAD))
        await assign(s, "Báo cáo CCHC quý IV", ("PGD.A", "PGD.B"), "2026-11-27 17:00")
        await assign(s, "Rà soát thủ tục hành chính", ("PGD.A",), "2026-12-03 17:00")
        await assign(s, "Công khai thủ tục hành chính", ("PGD.A",), "2026-12-10 17:00")
        await assign(s, "Tuyên truyền CCHC", ("PGD.A",), "2026-12-31 17:00")
        done = await assign(s, "Đã xong", ("PGD.A",), "2026-12-09 17:00")
        await assign(s, "Báo cáo hồ sơ trễ hạn", ("PGD.B",), "2026-12-04 17:00")
        await assign(s, "Kiểm tra nội vụ", ("PGD.D",), "2026-11-20 17:00")
        await tasks.mark_done(s, actor=ADMIN, assignment_id=done[0], now=CREATED)
        open_one, closed_one = (
            await directive(s, "125/SGDĐT-VP"),
            await directive(s, "9/X", closed=True),
        )
        for d, person, acked in (
            (open_one, staff_a, None),
            (open_one, head_a, CREATED),
            (open_one, head_b, None),
            (closed_one, staff_a, None),
        ):
            s.add(
                DirectiveRecipient(
                    directive_id=d.id, person_id=person.id, unit_id=person.unit_id, acked_at=acked
                )
            )
        await s.commit()


async def digest_messages(maker) -> dict[str, str]:
    """Return the digests queued, rendered as plain Vietnamese text, by chat."""
    async with maker() as s:
        rows = (await s.exec(select(Outbox).where(Outbox.kind == "digest"))).all()
    return {
        r.chat_id: strip_html(render(codec.loads(r.payload), "vi", escape=plain, tz=TZ))
        for r in rows
    }


async def test_a_unit_head_gets_the_units_open_work(maker):
    await seed(maker)
    async with maker() as s:
        queued = await digests.weekly_digests(s, now=DIGEST, cal=CAL)
        await s.commit()
    sent = await digest_messages(maker)
    assert queued == 4
    assert sorted(sent) == ["10", "100", "11", "200"]  # C has nothing open; D has no head
    assert sent["100"] == (
        "📋 Tổng hợp công việc của Phòng GD&ĐT A (đến 07:30 07/12/2026)\n"
        "Đơn vị đang có 4 nhiệm vụ chưa hoàn thành.\n\n"
        "⚠️ Quá hạn (2)\n"
        "• #1 Báo cáo CCHC quý IV – hạn 17:00 27/11/2026, quá hạn 6 ngày làm việc\n"
        "• #2 Rà soát thủ tục hành chính – hạn 17:00 03/12/2026, quá hạn 2 ngày làm việc\n\n"
        "⏰ Đến hạn trong 7 ngày tới (1)\n"
        "• #3 Công khai thủ tục hành chính – hạn 17:00 10/12/2026\n\n"
        "📌 Nhiệm vụ khác đang thực hiện (1)\n"
        "• #4 Tuyên truyền CCHC – hạn 17:00 31/12/2026\n\n"
        "📨 Công văn chưa xác nhận đã nhận (1)\n"
        "• Công văn số 125/SGDĐT-VP: Công văn 125/SGDĐT-VP – 1 người chưa xác nhận"
        " (hạn 17:00 24/11/2026)\n\n"
        "Đề nghị đồng chí chỉ đạo hoàn thành, báo cáo đúng hạn."
    )
    assert "⏰ Đến hạn trong 7 ngày tới (0)\nKhông có." in sent["200"]


async def test_leadership_sees_units_most_overdue_first(maker):
    await seed(maker)
    async with maker() as s:
        await digests.weekly_digests(s, now=DIGEST, cal=CAL)
        await s.commit()
    sent = await digest_messages(maker)
    assert sent["10"] == sent["11"]
    assert sent["10"] == (
        "📊 Tổng hợp tình hình thực hiện nhiệm vụ (đến 07:30 07/12/2026)\n"
        "3 đơn vị còn việc tồn đọng: 7 nhiệm vụ chưa hoàn thành, trong đó 5 nhiệm vụ quá hạn"
        " tại 3 đơn vị; 2 lượt chưa xác nhận công văn.\n\n"
        "Xếp theo số ngày quá hạn:\n"
        "• Phòng GD&ĐT D: 1 quá hạn (10 ngày làm việc), 0 đến hạn trong 7 ngày,"
        " 1 đang thực hiện; 0 lượt chưa xác nhận công văn\n"
        "• Phòng GD&ĐT A: 2 quá hạn (8 ngày làm việc), 1 đến hạn trong 7 ngày,"
        " 4 đang thực hiện; 1 lượt chưa xác nhận công văn\n"
        "• Phòng GD&ĐT B: 2 quá hạn (7 ngày làm việc), 0 đến hạn trong 7 ngày,"
        " 2 đang thực hiện; 1 lượt chưa xác nhận công văn"
    )


async def test_nothing_open_gives_leadership_an_all_clear_and_heads_nothing(maker):
    async with maker() as s:
        unit = await f.unit(s, "PGD.A", kind=UnitKind.DISTRICT_OFFICE)
        await f.contact(s, "100", await f.person(s, "HA", unit, Role.UNIT_HEAD))
        await f.contact(s, "10", await f.person(s, "LD", unit, Role.LEADER))
        assert await digests.weekly_digests(s, now=DIGEST, cal=CAL) == 1
        await s.commit()
    sent = await digest_messages(maker)
    assert list(sent) == ["10"]
    assert "Không có đơn vị nào còn nhiệm vụ chưa hoàn thành" in sent["10"]


async def test_long_lists_are_cut_with_a_count(maker):
    async with maker() as s:
        unit = await f.unit(s, "PGD.A", "Phòng A", kind=UnitKind.DISTRICT_OFFICE)
        await f.contact(s, "100", await f.person(s, "HA", unit, Role.UNIT_HEAD))
        for n in range(digests.LIST_MAX + 3):
            await assign(s, f"Nhiệm vụ {n}", ("PGD.A",), "2026-12-31 17:00")
        await digests.weekly_digests(s, now=DIGEST, cal=CAL)
        await s.commit()
    text = (await digest_messages(maker))["100"]
    assert text.count("• #") == digests.LIST_MAX
    assert "… và 3 mục khác." in text


async def test_a_digest_on_a_holiday_waits_for_the_next_working_morning(maker):
    await seed(maker)
    new_year = hanoi("2027-01-01 07:30")  # a public holiday (Friday)
    async with maker() as s:
        await digests.weekly_digests(s, now=new_year, cal=CAL)
        await s.commit()
        due = {r.due_at for r in (await s.exec(select(Outbox).where(Outbox.kind == "digest")))}
    assert due == {hanoi("2027-01-04 07:00")}


async def due(maker, now: str, cron: str = WEEKLY) -> bool:
    async with maker() as s:
        result = await digests.digest_due(s, now=hanoi(now), cron=cron, tz=TZ)
        await s.commit()
    return result


async def test_digest_is_due_once_per_fire(maker):
    assert not await due(maker, "2026-12-07 07:29")
    assert await due(maker, "2026-12-07 07:30")
    assert not await due(maker, "2026-12-07 07:30")
    assert not await due(maker, "2026-12-07 16:00")
    assert await due(maker, "2026-12-14 07:31")
    assert not await due(maker, "2026-12-14 07:32")
    async with maker() as s:
        marker = await s.get(JobLease, "digest:weekly")
    assert marker.expires_at == hanoi("2026-12-14 07:30")


async def test_after_a_restart_the_marker_in_the_database_holds(maker, db_url):
    assert await due(maker, "2026-12-07 07:30")
    # An in-memory database lives as long as its engine: a new session stands for a restart.
    engine = None if db_url.endswith(":memory:") else create_engine(db_url)
    restarted = maker if engine is None else session_maker(engine)
    assert not await due(restarted, "2026-12-07 07:35")
    assert await due(restarted, "2026-12-14 07:30")
    if engine is not None:
        await engine.dispose()


async def test_after_downtime_the_latest_fire_is_sent_if_less_than_a_day_old(maker):
    assert await due(maker, "2026-12-07 07:30")
    assert await due(maker, "2026-12-21 12:00")  # 14/12 and 21/12 missed: one digest
    assert not await due(maker, "2026-12-21 12:01")
    assert not await due(maker, "2026-12-29 08:00")  # 28/12 missed by more than a day
    assert await due(maker, "2027-01-04 07:30")


async def test_digest_sweep_sends_when_due(maker):
    await seed(maker)
    settings = Settings()
    async with maker() as s:
        assert await digests.digest_sweep(s, now=DIGEST, settings=settings) == 4
        await s.commit()
    async with maker() as s:
        assert await digests.digest_sweep(s, now=DIGEST, settings=settings) == 0
        await s.commit()
    assert len(await digest_messages(maker)) == 4


async def test_open_assignments_of_one_unit(maker):
    await seed(maker)
    async with maker() as s:
        unit = (await s.exec(select(Unit).where(Unit.code == "PGD.B"))).one()
        items = await digests.open_assignments(s, now=DIGEST, cal=CAL, unit_id=unit.id)
    assert [(i.task.title, i.overdue, i.overdue_days) for i in items] == [
        ("Báo cáo CCHC quý IV", True, 6),
        ("Báo cáo hồ sơ trễ hạn", True, 1),
    ]
