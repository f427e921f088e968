"""Directives: targeting, issuing through the outbox, acknowledgement, status and chasing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import BytesIO

import pytest
from openpyxl import load_workbook
from sqlmodel import func, select

from bot.clock import FakeClock
from bot.config import DirectiveSettings, Settings
from bot.messages import codec
from bot.models import (
    Audience,
    AuditLog,
    Directive,
    DirectiveRecipient,
    Outbox,
    Role,
    UnitKind,
)
from bot.services.calendar import WorkCalendar
from bot.services.directives import chasing, directives
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org.access import Actor, system_actor
from bot.services.reports.render import status_xlsx
from bot.services.reports.xlsx import data_rows, header_row
from tests import factories as f

ADMIN = system_actor("test")
CAL = WorkCalendar()
# Friday 4 December 2026, 16:00 in Hanoi.
FRIDAY_4PM = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


def draft(target: directives.Target, audience: Audience = Audience.EVERYONE) -> directives.Draft:
    return directives.Draft(
        number="125/SGDĐT-VP",
        issued_on=date(2026, 12, 4),
        title="Triển khai khảo sát hài lòng",
        summary="Đề nghị các đơn vị...",
        target=target,
        audience=audience,
        ack_deadline=DEADLINE,
    )


async def seed(s):
    """A department, two district offices (one with a school below), staff and heads."""
    root = await f.unit(s, "SGD", "Sở GD&ĐT", kind=UnitKind.DEPARTMENT)
    d1 = await f.unit(s, "PGD1", "Phòng GD&ĐT 1", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    d2 = await f.unit(s, "PGD2", "Phòng GD&ĐT 2", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    school = await f.unit(s, "TH1", "Trường TH 1", kind=UnitKind.SCHOOL, parent=d1)
    admin = await f.person(s, "AD", root, Role.ADMIN, name="Quản Trị")
    head1 = await f.person(s, "H1", d1, Role.UNIT_HEAD, name="Trưởng Một")
    await f.person(s, "H2", d2, Role.UNIT_HEAD, name="Trưởng Hai")
    a = await f.person(s, "A", d1, name="An")
    b = await f.person(s, "B", d1, name="Bình")
    c = await f.person(s, "C", d2, name="Cúc")
    t = await f.person(s, "T", school, name="Tâm")
    await f.person(s, "X", d1, name="Xuân", active=False)
    for i, p in enumerate((admin, head1, a, b, t), start=1):
        await f.contact(s, str(100 + i), p)
    blocked = await f.contact(s, "199", c)
    blocked.blocked_at = FRIDAY_4PM
    s.add(blocked)
    await s.flush()
    return {"root": root, "d1": d1, "d2": d2, "school": school, "head1": head1, "a": a}


async def issue(s, target, audience=Audience.EVERYONE, now=FRIDAY_4PM):
    return await directives.issue(
        s, actor=ADMIN, draft=draft(target, audience), now=now, default_deadline=DEADLINE, cal=CAL
    )


@pytest.mark.parametrize(
    ("target", "audience", "people"),
    [
        (directives.Target(all=True), Audience.EVERYONE, {"AD", "H1", "H2", "A", "B", "C", "T"}),
        (
            directives.Target(kinds=(UnitKind.DISTRICT_OFFICE,)),
            Audience.EVERYONE,
            {"H1", "H2", "A", "B", "C"},
        ),
        (directives.Target(subtree="pgd1"), Audience.EVERYONE, {"H1", "A", "B", "T"}),
        (directives.Target(units=("PGD2", "TH1")), Audience.EVERYONE, {"H2", "C", "T"}),
        (directives.Target(all=True), Audience.HEADS, {"H1", "H2"}),
    ],
)
async def test_targets_resolve_to_people(maker, target, audience, people):
    async with maker() as s:
        await seed(s)
        plan = await directives.plan(s, draft(target, audience))
    assert {r.person.code for r in plan.recipients} == people
    assert "X" not in {r.person.code for r in plan.recipients}


async def test_issue_queues_notices_and_lists_the_unreachable(maker):
    async with maker() as s:
        await seed(s)
        issued = await issue(s, directives.Target(kinds=(UnitKind.DISTRICT_OFFICE,)))
        await s.commit()
        rows = (await s.exec(select(Outbox))).all()
        audit = (await s.exec(select(AuditLog))).one()
        recipients = (await s.exec(select(DirectiveRecipient))).all()
    assert issued.queued == 3  # H1, A, B; H2 has no account, C blocked the bot
    assert {r.person.code for r in issued.unreachable} == {"H2", "C"}
    assert len(recipients) == 5
    assert {r.kind for r in rows} == {"directive"}
    message = codec.loads(rows[0].payload)
    assert message.key == "directive.notice"
    assert message.buttons[0][0].action == f"ack:{rows[0].ref_id}"
    assert message.params["number"] == "125/SGDĐT-VP"
    assert (audit.action, audit.count) == ("directive.issue", 5)


async def test_issue_refuses_bad_input_and_writes_nothing(maker):
    staff = Actor(name="s", roles=frozenset({Role.STAFF}))
    async with maker() as s:
        await seed(s)
        with pytest.raises(PermissionDenied):
            await directives.issue(
                s,
                actor=staff,
                draft=draft(directives.Target(all=True)),
                now=FRIDAY_4PM,
                default_deadline=DEADLINE,
                cal=CAL,
            )
        with pytest.raises(NotFound) as info:
            await issue(s, directives.Target(units=("PGD1", "NOPE")))
        assert info.value.params["codes"] == "NOPE"
        with pytest.raises(InvalidInput):
            await issue(s, directives.Target(all=True), now=DEADLINE + timedelta(hours=1))
        bad = directives.Draft(
            number=" ",
            issued_on=date(2026, 12, 4),
            title="x",
            summary="y",
            target=directives.Target(all=True),
        )
        with pytest.raises(InvalidInput) as info:
            await directives.issue(
                s, actor=ADMIN, draft=bad, now=FRIDAY_4PM, default_deadline=DEADLINE, cal=CAL
            )
        assert info.value.key == "directive.error.required"
        assert (await s.exec(select(func.count()).select_from(Directive))).one() == 0
        assert (await s.exec(select(func.count()).select_from(Outbox))).one() == 0


async def test_acknowledge_once_and_only_your_own(maker):
    async with maker() as s:
        await seed(s)
        await issue(s, directives.Target(units=("PGD1",)))
        rows = (await s.exec(select(DirectiveRecipient))).all()
        from bot.models import Contact

        mine = next(r for r in rows if r.contact_id is not None)
        contact = await s.get(Contact, mine.contact_id)
        other = next(
            c
            for c in (await s.exec(select(Contact))).all()
            if c.person_id not in (None, mine.person_id)
        )
        _, row, first = await directives.acknowledge(
            s, contact=contact, recipient_id=mine.id, now=FRIDAY_4PM + timedelta(minutes=5)
        )
        assert first
        _, again, first = await directives.acknowledge(
            s, contact=contact, recipient_id=mine.id, now=FRIDAY_4PM + timedelta(hours=5)
        )
        assert not first
        assert again.acked_at == FRIDAY_4PM + timedelta(minutes=5)
        assert row.ack_channel == "telegram"
        with pytest.raises(PermissionDenied):
            await directives.acknowledge(s, contact=other, recipient_id=mine.id, now=FRIDAY_4PM)
        with pytest.raises(NotFound):
            await directives.acknowledge(s, contact=contact, recipient_id=999999, now=FRIDAY_4PM)


async def test_status_by_unit_for_admins_and_own_unit_for_heads(maker):
    async with maker() as s:
        units = await seed(s)
        issued = await issue(s, directives.Target(kinds=(UnitKind.DISTRICT_OFFICE,)))
        rows = (await s.exec(select(DirectiveRecipient))).all()
        for r in rows:
            if r.person_id == units["a"].id:
                r.acked_at = FRIDAY_4PM + timedelta(hours=2)
                s.add(r)
        await s.flush()
        full = await directives.status(s, actor=ADMIN, directive_id=issued.directive.id)
        head = Actor(
            name="h", roles=frozenset({Role.UNIT_HEAD}), person=units["head1"], unit=units["d1"]
        )
        own = await directives.status(s, actor=head, directive_id=issued.directive.id)
        xlsx = status_xlsx(full, locale="vi", settings=Settings())
    assert [(u.unit.code, u.acked, u.total) for u in full.units] == [("PGD1", 1, 3), ("PGD2", 0, 2)]
    assert full.units[0].median_seconds == 7200
    assert full.units[0].missing == ["Bình", "Trưởng Một"]
    assert [u.unit.code for u in own.units] == ["PGD1"]
    sheet = load_workbook(BytesIO(xlsx)).active
    assert [c.value for c in sheet[header_row(sheet)]][1:4] == [
        None,  # "Đơn vị", merged down from the upper header row
        "Số người nhận",
        "Đã xác nhận",
    ]
    assert data_rows(sheet)[0][1:5] == ("Phòng GD&ĐT 1", 3, 1, 0.333)


class Sweeper:
    """Run the chasing sweep on a fake clock and collect what it queued."""

    def __init__(self, maker, clock: FakeClock) -> None:
        self.maker, self.clock = maker, clock
        self.settings = DirectiveSettings()

    async def at(self, local: str) -> list[tuple[str, str]]:
        """Move the clock to a Hanoi time 'YYYY-MM-DD HH:MM', sweep, return new (chat, key)."""
        self.clock.set(datetime.fromisoformat(local + "+07:00"))
        async with self.maker() as s:
            before = (await s.exec(select(func.max(Outbox.id)))).one() or 0
            await chasing.chase(s, now=self.clock.now(), calendar=CAL, settings=self.settings)
            await s.commit()
            rows = (await s.exec(select(Outbox).where(Outbox.id > before))).all()
        return sorted((r.chat_id, codec.loads(r.payload).key) for r in rows)


async def test_chasing_ladder_over_a_weekend_and_after_downtime(maker):
    clock = FakeClock(FRIDAY_4PM)
    async with maker() as s:
        await seed(s)
        issued = await issue(s, directives.Target(units=("PGD1",)))
        await s.commit()
    sweep = Sweeper(maker, clock)
    # Friday 16:00 push; 1 working hour left that day; the weekend and quiet hours send nothing.
    assert await sweep.at("2026-12-04 16:59") == []
    assert await sweep.at("2026-12-05 10:00") == []
    assert await sweep.at("2026-12-07 06:00") == []
    # 4 working hours: Monday 10:30. A (103), B (104), H1 (102) get the first reminder, once.
    assert await sweep.at("2026-12-07 10:30") == [
        ("102", "directive.reminder"),
        ("103", "directive.reminder"),
        ("104", "directive.reminder"),
    ]
    assert await sweep.at("2026-12-07 10:45") == []
    async with maker() as s:
        from bot.models import Contact

        contact = (await s.exec(select(Contact).where(Contact.external_id == "103"))).one()
        row = (
            await s.exec(
                select(DirectiveRecipient).where(DirectiveRecipient.contact_id == contact.id)
            )
        ).one()
        await directives.acknowledge(s, contact=contact, recipient_id=row.id, now=clock.now())
        await s.commit()
    # Down from Monday 10:45 to Tuesday 17:00 (16 working hours after the push): one reminder
    # step, the head's list and the admins' alert, each once; A acknowledged and is left alone.
    sent = await sweep.at("2026-12-08 17:00")
    assert sent == [
        ("101", "directive.escalate_admins"),
        ("102", "directive.escalate_head"),
        ("102", "directive.reminder"),
        ("104", "directive.reminder"),
    ]
    assert await sweep.at("2026-12-09 09:00") == []
    async with maker() as s:
        d = await s.get(Directive, issued.directive.id)
        head_alert = (await s.exec(select(Outbox).where(Outbox.kind == "directive_head"))).one()
    assert d.admins_escalated_at is not None
    names = codec.loads(head_alert.payload).params["names"]
    assert [r["name"] for r in names.rows] == ["Bình", "Trưởng Một"]


async def test_chasing_closes_when_everyone_acknowledged(maker):
    clock = FakeClock(FRIDAY_4PM)
    async with maker() as s:
        await seed(s)
        issued = await issue(s, directives.Target(units=("TH1",)))
        for r in (await s.exec(select(DirectiveRecipient))).all():
            r.acked_at = FRIDAY_4PM
            s.add(r)
        await s.commit()
    assert await Sweeper(maker, clock).at("2026-12-07 10:30") == []
    async with maker() as s:
        assert (await s.get(Directive, issued.directive.id)).closed_at is not None


async def test_status_separates_not_yet_acknowledged_from_not_received(maker):
    from bot.channels.render import plain, render
    from bot.i18n import t as tr
    from bot.models import Outbox, OutboxStatus, Person
    from handlers.directives import status_message

    async with maker() as s:
        await seed(s)
        issued = await issue(s, directives.Target(kinds=(UnitKind.DISTRICT_OFFICE,)))
        names = {p.id: p.full_name for p in (await s.exec(select(Person))).all()}
        by_name = {
            names[r.person_id]: r.id for r in (await s.exec(select(DirectiveRecipient))).all()
        }
        for row in (await s.exec(select(Outbox).where(Outbox.kind == "directive"))).all():
            if row.ref_id == by_name["Bình"]:
                row.status = OutboxStatus.FAILED  # gave up after retries
            elif row.ref_id == by_name["Trưởng Một"]:
                row.status = OutboxStatus.SENT
            s.add(row)
        await s.flush()
        full = await directives.status(s, actor=ADMIN, directive_id=issued.directive.id)
        xlsx = status_xlsx(full, locale="vi", settings=Settings())
    d1, d2 = full.units
    assert (d1.missing, d1.unreached) == (["An", "Trưởng Một"], ["Bình"])
    assert (d2.missing, d2.unreached) == ([], ["Cúc", "Trưởng Hai"])  # blocked; never linked
    assert full.unreached == 3
    text = render(status_message(full), "vi", escape=plain)
    assert "Chưa xác nhận: An, Trưởng Một" in text
    assert (
        "Không nhận được (chưa liên kết tài khoản, đã chặn bot hoặc gửi không thành công): Bình"
        in text
    )
    sheet = load_workbook(BytesIO(xlsx)).active
    assert [c.value for c in sheet[header_row(sheet)]][6:] == [
        "Chưa xác nhận",
        tr("directive.xlsx.unreached", "vi"),
    ]
    assert data_rows(sheet)[0][6:] == ("An; Trưởng Một", "Bình")
