"""Deadline tasks: the ladder over a simulated month, downtime, done, late, reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.clock import FakeClock
from bot.config import TaskSettings
from bot.messages import codec
from bot.models import Outbox, Role, TaskAssignment, TaskLog, TaskStatus, UnitKind
from bot.services.calendar import WorkCalendar
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor, system_actor
from bot.services.tasks import tasks
from tests import factories as f

ADMIN = system_actor("test")
CAL = WorkCalendar()
SETTINGS = TaskSettings()


def hanoi(text: str) -> datetime:
    return datetime.fromisoformat(text + "+07:00").astimezone(UTC)


async def seed(s):
    root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
    d1 = await f.unit(s, "PGD1", "Phòng GD&ĐT 1", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    await f.contact(s, "10", await f.person(s, "LD", root, Role.LEADER, name="Lãnh Đạo"))
    head = await f.person(s, "HD", d1, Role.UNIT_HEAD, name="Trưởng")
    await f.contact(s, "20", head)
    await f.contact(s, "30", await f.person(s, "ST", d1, name="Cán Bộ"))
    await f.contact(s, "40", await f.person(s, "OT", d1, name="Người Khác"))
    return d1, head


async def new_task(maker, clock, due: str, **kw):
    async with maker() as s:
        d1, head = await seed(s)
        new = tasks.NewTask(
            title="Báo cáo CCHC quý III",
            units=("PGD1",),
            due_at=hanoi(due),
            assignees=("ST",),
            **kw,
        )
        _, rows = await tasks.create(
            s, actor=ADMIN, new=new, now=clock.now(), cal=CAL, settings=SETTINGS
        )
        await s.commit()
    return rows[0].id, d1, head


async def outbox_since(s, last_id: int) -> list[tuple[str, str]]:
    rows = (await s.exec(select(Outbox).where(Outbox.id > last_id).order_by(Outbox.id))).all()
    return [(r.chat_id, codec.loads(r.payload).key) for r in rows]


async def simulate(maker, clock, until: str, *, skip: tuple[str, str] | None = None):
    """Sweep every hour until `until` (Hanoi time); return {local time: [(chat, key)]}."""
    seen: dict[str, list[tuple[str, str]]] = {}
    end = hanoi(until)
    async with maker() as s:
        last = max([r.id for r in (await s.exec(select(Outbox))).all()] or [0])
    while clock.now() < end:
        clock.advance(timedelta(hours=1))
        local = CAL.local(clock.now()).strftime("%Y-%m-%d %H:%M")
        if skip and skip[0] <= local < skip[1]:
            continue
        async with maker() as s:
            await tasks.sweep(s, now=clock.now(), cal=CAL, settings=SETTINGS)
            await s.commit()
            new = await outbox_since(s, last)
            if new:
                seen[local] = new
                last = max(r.id for r in (await s.exec(select(Outbox))).all())
    return seen


def step(*keys: str) -> list[tuple[str, str]]:
    """The messages a step sends: to the head (20) and the assignee (30)."""
    return [(chat, key) for key in keys for chat in ("20", "30")]


async def test_the_ladder_over_a_month_with_weekends_and_national_day(maker):
    # Assigned Monday 3 August 2026, due Friday 4 September 17:00. 31/8–2/9 are days off and
    # Saturday 22/8 is a make-up working day in 2026's official calendar.
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    await new_task(maker, clock, "2026-09-04 17:00")
    seen = await simulate(maker, clock, "2026-09-10 12:00")
    assert seen == {
        "2026-08-22 08:00": step("task.reminder_before"),  # 7 working days before
        "2026-08-27 08:00": step("task.reminder_before"),  # 3 working days before
        "2026-09-03 08:00": step("task.reminder_before"),  # 1 working day before
        "2026-09-04 08:00": step("task.reminder_due"),
        "2026-09-07 08:00": step("task.reminder_overdue"),  # the next working day: Monday
        "2026-09-08 08:00": step("task.reminder_overdue"),
        "2026-09-09 08:00": [*step("task.reminder_overdue"), ("10", "task.leadership_overdue")],
        "2026-09-10 08:00": step("task.reminder_overdue"),
    }


async def test_downtime_sends_the_current_step_once(maker):
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    await new_task(maker, clock, "2026-09-04 17:00")
    # The bot is down from 26/8 to the morning of 4/9: the 3-day and 1-day reminders are
    # not sent late; on restart the due-day step goes once.
    seen = await simulate(
        maker, clock, "2026-09-04 12:00", skip=("2026-08-26 00:00", "2026-09-04 10:00")
    )
    assert seen == {
        "2026-08-22 08:00": step("task.reminder_before"),
        "2026-09-04 10:00": step("task.reminder_due"),
    }


async def test_done_late_and_reopen(maker):
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    aid, d1, head = await new_task(maker, clock, "2026-08-05 17:00")
    staff = Actor(name="s", roles=frozenset({Role.STAFF}), person=head, unit=d1)
    clock.set(hanoi("2026-08-06 09:00"))
    async with maker() as s:
        row, _, _ = await tasks.mark_done(
            s, actor=staff, assignment_id=aid, now=clock.now(), note="Đã gửi báo cáo"
        )
        await s.commit()
    assert (row.status, row.late, row.done_at) == (TaskStatus.DONE, True, clock.now())
    async with maker() as s:
        with pytest.raises(InvalidInput) as info:
            await tasks.mark_done(s, actor=staff, assignment_id=aid, now=clock.now())
        assert info.value.key == "task.error.already_done"
        with pytest.raises(PermissionDenied):
            await tasks.reopen(
                s,
                actor=staff,
                assignment_id=aid,
                reason="x",
                now=clock.now(),
                cal=CAL,
                settings=SETTINGS,
            )
        head_actor = Actor(name="h", roles=frozenset({Role.UNIT_HEAD}), person=head, unit=d1)
        with pytest.raises(InvalidInput):
            await tasks.reopen(
                s,
                actor=head_actor,
                assignment_id=aid,
                reason=" ",
                now=clock.now(),
                cal=CAL,
                settings=SETTINGS,
            )
        await tasks.reopen(
            s,
            actor=head_actor,
            assignment_id=aid,
            reason="Thiếu số liệu",
            now=clock.now(),
            cal=CAL,
            settings=SETTINGS,
        )
        await s.commit()
        row = await s.get(TaskAssignment, aid)
        log = [(x.action, x.note) for x in (await s.exec(select(TaskLog))).all()]
    assert row.status == TaskStatus.OPEN
    assert row.next_step_at == clock.now()
    assert log == [("done", "Đã gửi báo cáo"), ("reopen", "Thiếu số liệu")]


async def test_other_units_cannot_report(maker):
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    aid, _, _ = await new_task(maker, clock, "2026-08-05 17:00")
    async with maker() as s:
        other = await f.unit(s, "PGD9", "Phòng 9", kind=UnitKind.DISTRICT_OFFICE)
        someone = await f.person(s, "Z9", other)
        actor = Actor(name="z", roles=frozenset({Role.STAFF}), person=someone, unit=other)
        with pytest.raises(PermissionDenied):
            await tasks.mark_done(s, actor=actor, assignment_id=aid, now=clock.now())


async def test_create_refuses_past_due_and_unknown_units(maker):
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    async with maker() as s:
        await seed(s)
        with pytest.raises(InvalidInput):
            await tasks.create(
                s,
                actor=ADMIN,
                now=clock.now(),
                cal=CAL,
                settings=SETTINGS,
                new=tasks.NewTask("x", ("PGD1",), hanoi("2026-08-01 08:00")),
            )
        from bot.services.errors import NotFound

        with pytest.raises(NotFound):
            await tasks.create(
                s,
                actor=ADMIN,
                now=clock.now(),
                cal=CAL,
                settings=SETTINGS,
                new=tasks.NewTask("x", ("NOPE",), hanoi("2026-09-08 08:00")),
            )


async def test_a_task_may_have_its_own_ladder(maker):
    clock = FakeClock(hanoi("2026-08-03 09:00"))
    await new_task(maker, clock, "2026-08-14 17:00", ladder="2")
    seen = await simulate(maker, clock, "2026-08-14 12:00")
    assert seen == {
        "2026-08-12 08:00": step("task.reminder_before"),
        "2026-08-14 08:00": step("task.reminder_due"),
    }
    async with maker() as s:
        with pytest.raises(InvalidInput) as info:
            await tasks.create(
                s,
                actor=ADMIN,
                now=clock.now(),
                cal=CAL,
                settings=SETTINGS,
                new=tasks.NewTask("x", ("PGD1",), hanoi("2026-09-01 08:00"), ladder="bảy"),
            )
        assert info.value.key == "task.error.ladder"
