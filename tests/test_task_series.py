"""Recurring tasks: rule checks, occurrences created ahead once per due moment, downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.clock import FakeClock
from bot.config import TaskSettings
from bot.messages import codec
from bot.models import AuditLog, Outbox, Role, Task, TaskAssignment, TaskSeries, Unit, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org.access import Actor, system_actor
from bot.services.tasks import task_series, tasks
from tests import factories as f

ADMIN = system_actor("test")
CAL = WorkCalendar()
SETTINGS = TaskSettings()
TZ = CAL.tz
MONTHLY = "0 17 25 * *"
QUARTERLY = "0 17 25 3,6,9,12 *"


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


def local(moment: datetime) -> str:
    return CAL.local(moment).strftime("%Y-%m-%d %H:%M")


async def seed(s) -> None:
    root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
    kind = UnitKind.DISTRICT_OFFICE
    a = await f.unit(s, "PGD.A", "Phòng GD&ĐT huyện A", kind=kind, parent=root)
    await f.unit(s, "PGD.B", "Phòng GD&ĐT huyện B", kind=kind, parent=root)
    await f.contact(s, "100", await f.person(s, "HA", a, Role.UNIT_HEAD))
    await s.commit()


async def new_series(maker, now: datetime, cron: str = MONTHLY, lead_days: int = 10) -> int:
    async with maker() as s:
        await seed(s)
        row = await task_series.create_series(
            s,
            actor=ADMIN,
            title="Báo cáo tình hình thực hiện cải cách hành chính tháng",
            details="Gửi về Văn phòng Sở.",
            cron=cron,
            unit_codes=["pgd.a", "PGD.B"],
            lead_days=lead_days,
            now=now,
        )
        await s.commit()
        assert row.id is not None
        return row.id


async def spawn(maker, now: datetime) -> int:
    async with maker() as s:
        created = await task_series.spawn_due(s, now=now, cal=CAL, settings=SETTINGS)
        await s.commit()
    return created


async def occurrences(maker) -> list[tuple[str, str, int]]:
    """Return (local due, local creation, units) of each task created, in order."""
    async with maker() as s:
        rows = (
            await s.exec(
                select(Task, TaskAssignment)
                .join(TaskAssignment, TaskAssignment.task_id == Task.id)
                .order_by(Task.id, TaskAssignment.id)
            )
        ).all()
    out: dict[int, tuple[str, str, int]] = {}
    for task, row in rows:
        due, made, n = out.get(task.id, (local(row.due_at), local(task.created_at), 0))
        out[task.id] = (due, made, n + 1)
    return list(out.values())


async def test_create_stores_the_rule_and_the_first_due_moment(maker):
    series_id = await new_series(maker, hanoi("2026-11-30 09:00"))
    async with maker() as s:
        row = await s.get(TaskSeries, series_id)
        audit = (await s.exec(select(AuditLog))).one()
    assert (row.unit_codes, row.cron, row.lead_days) == ("PGD.A,PGD.B", MONTHLY, 10)
    assert local(row.next_due_at) == "2026-12-25 17:00"
    assert (audit.action, audit.count) == ("series.create", 2)


@pytest.mark.parametrize(
    ("cron", "key"),
    [
        ("0 17 25 *", "series.error.cron"),
        ("61 17 25 * *", "series.error.cron"),
        ("0 17 25 * mon", "series.error.cron"),  # day of month and day of week: ambiguous
        ("0 17 * * 8", "series.error.cron"),
        ("0 17 * * 5-1", "series.error.cron"),
        ("0 17 30 2 *", "series.error.never"),
        ("*/5 * * * *", "series.error.too_often"),
        ("0 8,17 * * *", "series.error.too_often"),
    ],
)
async def test_bad_rules_are_refused_with_a_translated_reason(maker, cron, key):
    with pytest.raises(InvalidInput) as info:
        await new_series(maker, hanoi("2026-11-30 09:00"), cron=cron)
    assert info.value.key == key
    assert info.value.params["cron"] == cron


async def test_other_refusals(maker):
    now = hanoi("2026-11-30 09:00")
    async with maker() as s:
        await seed(s)
        args = {"title": "x", "details": "", "cron": MONTHLY, "now": now}
        staff = Actor(name="s", roles=frozenset({Role.STAFF}))
        with pytest.raises(PermissionDenied):
            await task_series.create_series(
                s, actor=staff, unit_codes=["PGD.A"], lead_days=10, **args
            )
        with pytest.raises(InvalidInput) as info:
            await task_series.create_series(
                s, actor=ADMIN, unit_codes=["PGD.A"], lead_days=61, **args
            )
        assert info.value.key == "series.error.lead_days"
        with pytest.raises(InvalidInput) as info:
            await task_series.create_series(s, actor=ADMIN, unit_codes=[" "], lead_days=1, **args)
        assert info.value.key == "series.error.no_unit"
        with pytest.raises(NotFound):
            await task_series.create_series(
                s, actor=ADMIN, unit_codes=["PGD.Z"], lead_days=1, **args
            )


@pytest.mark.parametrize(
    ("cron", "first"),
    [
        ("0 17 * * 1", "2026-11-30 17:00"),  # crontab's 1 is Monday (APScheduler's would be Tue)
        ("0 17 * * 0", "2026-12-06 17:00"),
        ("0 17 * * 7", "2026-12-06 17:00"),
        ("0 17 * * 2-3", "2026-12-01 17:00"),
        ("0 17 * * */3", "2026-12-02 17:00"),  # Sunday, Wednesday, Saturday
        ("0 17 * * fri", "2026-12-04 17:00"),
        ("30 7 * * mon", "2026-12-07 07:30"),
    ],
)
def test_crontab_days_of_week(cron, first):
    trigger = task_series.cron_trigger(cron, TZ)
    assert local(task_series.fire_after(trigger, hanoi("2026-11-30 08:00"))) == first


def test_fire_after_is_strictly_after():
    trigger = task_series.cron_trigger(MONTHLY, TZ)
    due = hanoi("2026-12-25 17:00")
    assert task_series.fire_after(trigger, due - timedelta(microseconds=1)) == due
    assert local(task_series.fire_after(trigger, due)) == "2027-01-25 17:00"


async def test_an_occurrence_is_created_once_ten_working_days_ahead(maker):
    series_id = await new_series(maker, hanoi("2026-11-30 09:00"))
    assert await spawn(maker, hanoi("2026-12-10 16:00")) == 0
    # 25/12/2026 is a Friday: ten working days before is Friday 11/12.
    assert await spawn(maker, hanoi("2026-12-11 06:59")) == 0  # quiet hours: wait
    assert await spawn(maker, hanoi("2026-12-11 07:00")) == 1
    assert await spawn(maker, hanoi("2026-12-11 07:00")) == 0
    assert await spawn(maker, hanoi("2026-12-11 08:00")) == 0
    assert await occurrences(maker) == [("2026-12-25 17:00", "2026-12-11 07:00", 2)]
    async with maker() as s:
        row = await s.get(TaskSeries, series_id)
        task = (await s.exec(select(Task))).one()
        keys = [codec.loads(o.payload).key for o in (await s.exec(select(Outbox))).all()]
    assert local(row.next_due_at) == "2027-01-25 17:00"
    assert (task.series_id, task.created_by) == (series_id, f"series:{series_id}")
    assert keys == ["task.assigned"]  # the head of PGD.A; PGD.B has nobody linked


async def test_after_long_downtime_only_future_due_moments_are_created(maker):
    series_id = await new_series(maker, hanoi("2026-11-30 09:00"))
    # Down from before 11/12/2026 until 20/3/2027: the due moments of 25/12, 25/1 and 25/2
    # passed; 25/3 is still ahead and its creation moment (11/3) passed: it is created now.
    assert await spawn(maker, hanoi("2027-03-22 08:00")) == 1
    assert await spawn(maker, hanoi("2027-03-22 08:00")) == 0
    assert await occurrences(maker) == [("2027-03-25 17:00", "2027-03-22 08:00", 2)]
    async with maker() as s:
        skipped = (
            await s.exec(select(AuditLog.detail).where(AuditLog.action == "series.skip"))
        ).all()
        row = await s.get(TaskSeries, series_id)
    assert [d[4:14] for d in skipped] == ["2026-12-25", "2027-01-25", "2027-02-25"]
    assert local(row.next_due_at) == "2027-04-25 17:00"


async def test_a_quarterly_review_over_a_fake_year_with_its_reminders(maker):
    clock = FakeClock(hanoi("2027-01-01 08:00"))
    await new_series(maker, clock.now(), cron=QUARTERLY)
    while clock.now() < hanoi("2028-01-01 08:00"):
        async with maker() as s:
            await task_series.spawn_due(s, now=clock.now(), cal=CAL, settings=SETTINGS)
            await tasks.sweep(s, now=clock.now(), cal=CAL, settings=SETTINGS)
            await s.commit()
        clock.advance(timedelta(days=1))
    assert await occurrences(maker) == [
        ("2027-03-25 17:00", "2027-03-11 08:00", 2),
        ("2027-06-25 17:00", "2027-06-11 08:00", 2),
        ("2027-09-25 17:00", "2027-09-13 08:00", 2),
        ("2027-12-25 17:00", "2027-12-13 08:00", 2),
    ]
    async with maker() as s:
        sent = [codec.loads(o.payload) for o in (await s.exec(select(Outbox))).all()]
    sevens = [m for m in sent if m.key == "task.reminder_before" and m.params["days"] == 7]
    assert len(sevens) == 4  # each occurrence's 7-day reminder reached the head of PGD.A


async def test_a_stopped_series_creates_nothing(maker):
    series_id = await new_series(maker, hanoi("2026-11-30 09:00"))
    async with maker() as s:
        await task_series.stop_series(
            s, actor=ADMIN, series_id=series_id, now=hanoi("2026-12-01 09:00")
        )
        await s.commit()
        with pytest.raises(InvalidInput) as info:
            await task_series.stop_series(
                s, actor=ADMIN, series_id=series_id, now=hanoi("2026-12-01 09:00")
            )
        assert info.value.key == "series.error.stopped"
        with pytest.raises(NotFound):
            await task_series.stop_series(
                s, actor=ADMIN, series_id=99, now=hanoi("2026-12-01 09:00")
            )
    assert await spawn(maker, hanoi("2026-12-14 09:00")) == 0
    async with maker() as s:
        listed = await task_series.list_series(s)
    assert [(r.id, r.active) for r in listed] == [(series_id, False)]


async def test_a_closed_unit_is_left_out_of_later_occurrences(maker):
    await new_series(maker, hanoi("2026-11-30 09:00"))
    async with maker() as s:
        unit = (await s.exec(select(Unit).where(Unit.code == "PGD.B"))).one()
        unit.active = False
        s.add(unit)
        await s.commit()
    assert await spawn(maker, hanoi("2026-12-11 09:00")) == 1
    assert await occurrences(maker) == [("2026-12-25 17:00", "2026-12-11 09:00", 1)]


async def test_two_runners_racing_create_one_occurrence(maker):
    await new_series(maker, hanoi("2026-11-30 09:00"))
    now = hanoi("2026-12-11 09:00")
    async with maker() as slow:
        stale = (await slow.exec(select(TaskSeries))).one()  # read before the other commits
        assert await spawn(maker, now) == 1
        assert stale.next_due_at == hanoi("2026-12-25 17:00")
        assert await task_series.spawn_due(slow, now=now, cal=CAL, settings=SETTINGS) == 0
        await slow.commit()
    assert len(await occurrences(maker)) == 1
