"""A person on several channels: one contact per message, the preferred one first, fallback."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import SQLModel, select

from bot.channels.contract import Outcome
from bot.config import DeliverySettings
from bot.db import create_engine, session_maker
from bot.messages import OutboundMessage
from bot.models import (
    Channel,
    Contact,
    DirectiveRecipient,
    Outbox,
    OutboxStatus,
    Person,
    Role,
    TaskAssignment,
)
from bot.services.delivery import contacts, outbox
from bot.services.directives import broadcasts, directives
from bot.services.dossiers import apologies
from bot.services.errors import InvalidInput
from bot.services.org import access
from bot.services.tasks import tasks
from jobs.dispatcher import Dispatcher
from tests import factories as f
from tests.channels_fake import FakeChannel

S = OutboxStatus
MSG = OutboundMessage("errors.unknown_unit", {"code": "X1"})
T0 = f.T0


async def link(s, person: Person, channel: str, external_id: str, *, seen_hours: int = 0, **kw):
    """Add a contact of `person` on `channel`, last seen `seen_hours` after T0."""
    row = Contact(
        channel=Channel(channel),
        external_id=external_id,
        locale="vi",
        person_id=person.id,
        created_at=T0,
        last_seen_at=T0 + timedelta(hours=seen_hours),
        **kw,
    )
    s.add(row)
    await s.flush()
    return row


async def people(s):
    """One person per case: on no channel, on Telegram only, on Telegram and Zalo."""
    unit = await f.unit(s, "VP")
    none = await f.person(s, "P0", unit, Role.UNIT_HEAD)
    one = await f.person(s, "P1", unit, Role.UNIT_HEAD)
    two = await f.person(s, "P2", unit, Role.UNIT_HEAD)
    await link(s, one, "telegram", "11")
    tg = await link(s, two, "telegram", "21", seen_hours=1)
    zl = await link(s, two, "zalo", "z21", seen_hours=2)
    return unit, none, one, two, tg, zl


async def test_each_person_gets_one_contact_the_latest_seen_without_a_preference(maker):
    async with maker() as s:
        _, none, one, two, _, zl = await people(s)
        found = await contacts.reachable(s, [none.id, one.id, two.id])
    assert set(found) == {one.id, two.id}
    assert (found[one.id].external_id, found[two.id].id) == ("11", zl.id)


async def test_the_preferred_channel_wins_unless_it_cannot_be_used(maker):
    async with maker() as s:
        _, _, _, two, tg, zl = await people(s)
        await contacts.set_preferred(s, person=two, channel="Telegram")
        assert (await contacts.reachable(s, [two.id]))[two.id].id == tg.id
        tg.opted_out = True
        s.add(tg)
        assert (await contacts.reachable(s, [two.id]))[two.id].id == zl.id
        tg.opted_out, tg.blocked_at = False, T0
        s.add(tg)
        assert (await contacts.reachable(s, [two.id]))[two.id].id == zl.id
        zl.blocked_at = T0
        s.add(zl)
        assert await contacts.reachable(s, [two.id]) == {}


async def test_an_opted_out_contact_gets_mandatory_messages_only(maker):
    async with maker() as s:
        _, _, one, _, _, _ = await people(s)
        only = (await contacts.linked(s, one.id))[0]
        only.opted_out = True
        s.add(only)
        assert (await contacts.reachable(s, [one.id]))[one.id].id == only.id
        assert await contacts.reachable(s, [one.id], optional=True) == {}


async def test_a_channel_the_person_has_not_linked_cannot_be_preferred(maker):
    async with maker() as s:
        _, _, one, _, _, _ = await people(s)
        with pytest.raises(InvalidInput) as err:
            await contacts.set_preferred(s, person=one, channel="zalo")
        assert err.value.key == "channel.error.unknown"
        assert err.value.params["choices"] == "telegram"
        assert one.preferred_channel is None


async def test_every_recipient_query_picks_one_contact_per_person(maker):
    async with maker() as s:
        unit, *_ = await people(s)
        await s.commit()
        want = {"11", "z21"}
        heads = await access.contacts_with_role(s, Role.UNIT_HEAD, unit_id=unit.id)
        assert {c.external_id for c in heads} == want
        responsible = await apologies.responsible_contacts(s, unit_id=unit.id)
        assert {c.external_id for c in responsible} == want
        segment = broadcasts.Segment(units=(unit.code,))
        assert {c.external_id for c in await broadcasts.recipients(s, segment)} == want
        draft = directives.Draft(
            "1/CV", T0.date(), "Tiêu đề", "Tóm tắt", directives.Target(units=(unit.code,))
        )
        plan = await directives.plan(s, draft)
        reached = {r.person.code: r.contact and r.contact.external_id for r in plan.recipients}
        assert reached == {"P0": None, "P1": "11", "P2": "z21"}
        task = await tasks_row(s, unit)
        assert {c.external_id for c in await tasks.recipients(s, task)} == want


async def tasks_row(s, unit) -> TaskAssignment:
    """Add a task assigned to a unit; return its assignment."""
    from bot.models import Task

    task = Task(title="Báo cáo", created_by="test", created_at=T0)
    s.add(task)
    await s.flush()
    row = TaskAssignment(task_id=task.id, unit_id=unit.id, due_at=T0 + timedelta(days=3))
    s.add(row)
    await s.flush()
    return row


# Falling back to the other channel ---------------------------------------------------------


@pytest.fixture
async def shared(db_url, tmp_path):
    """Give a session maker whose sessions use their own connections (a SQLite file)."""
    if db_url.startswith("sqlite"):
        db_url = f"sqlite+aiosqlite:///{tmp_path}/fallback.db"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_maker(engine)
    await engine.dispose()


class World:
    """Two channels in memory: "telegram" and "fake" (a second platform), one database."""

    def __init__(self, maker, clock) -> None:
        self.maker, self.clock = maker, clock
        self.telegram = FakeChannel("telegram", now=clock.now)
        self.fake = FakeChannel("fake", now=clock.now)

    async def person(self, *, fake: bool = True, citizen: bool = False) -> tuple[Contact, ...]:
        """Add a person on Telegram (id 1) and the fake channel (id f1); return the contacts."""
        async with self.maker() as s:
            unit = await f.unit(s, "VP")
            who = None if citizen else await f.person(s, "P1", unit)
            tg = Contact(channel=Channel.TELEGRAM, external_id="1", created_at=T0)
            tg.person_id = who.id if who else None
            rows = [tg]
            if fake:
                rows.append(
                    Contact(
                        channel="fake",
                        external_id="f1",
                        created_at=T0,
                        person_id=who.id if who else None,
                    )
                )
            s.add_all(rows)
            await s.commit()
            return tuple(rows)

    async def queue(self, contact: Contact, **kw) -> int:
        async with self.maker() as s:
            row = await outbox.enqueue(
                s, contact=contact, message=MSG, kind="directive", now=self.clock.now(), **kw
            )
            await s.commit()
            return row.id

    async def drain(self, *, telegram: bool = True) -> None:
        """Dispatch every due row (without a Telegram lane when Telegram is off)."""

        async def sleep(seconds: float) -> None:
            self.clock.advance(timedelta(seconds=max(seconds, 0.001)))
            await asyncio.sleep(0)

        dispatcher = Dispatcher(
            maker=self.maker,
            channels={"telegram": self.telegram, "fake": self.fake}
            if telegram
            else {"fake": self.fake},
            settings=DeliverySettings(backoff_seconds=1),
            clock=self.clock,
            owner="test",
            sleep=sleep,
            lookahead=0.0,
        )
        await asyncio.wait_for(dispatcher.drain(), 30)

    async def rows(self) -> list[Outbox]:
        async with self.maker() as s:
            return list((await s.exec(select(Outbox).order_by(Outbox.id))).all())


@pytest.fixture
def world(shared, clock) -> World:
    return World(shared, clock)


async def test_a_message_to_a_blocked_telegram_goes_to_the_other_channel(world):
    tg, other = await world.person()
    world.telegram.script("1", Outcome.blocked())
    first = await world.queue(tg, ref_id=7, priority=10)

    await world.drain()

    failed, again = await world.rows()
    assert failed.id == first
    assert (failed.status, again.status) == (S.FAILED, S.SENT)
    assert failed.last_error == f"blocked; sent instead by fake (row {again.id})"
    assert (again.channel, again.chat_id, again.contact_id) == ("fake", "f1", other.id)
    assert (again.kind, again.ref_id, again.priority) == ("directive", 7, 10)
    assert world.fake.texts("f1") == [world.fake.text(MSG, "vi")]
    assert world.telegram.delivered == []


async def test_outside_the_window_falls_back_too(world):
    tg, _ = await world.person()
    world.telegram.script(
        "1", Outcome("failed", error="outside_window", attempted=False, code="outside_window")
    )
    await world.queue(tg)

    await world.drain()

    failed, again = await world.rows()
    assert failed.last_error == f"outside_window; sent instead by fake (row {again.id})"
    assert again.status == S.SENT
    assert len(world.fake.delivered) == 1


async def test_with_telegram_off_a_message_to_a_telegram_contact_goes_to_the_other(world):
    tg, other = await world.person()
    await world.queue(tg)

    await world.drain(telegram=False)  # an agency on Zalo only: no Telegram lane

    failed, again = await world.rows()
    assert failed.status == S.FAILED
    assert failed.last_error == f"no telegram channel; sent instead by fake (row {again.id})"
    assert (again.status, again.contact_id) == (S.SENT, other.id)
    assert world.fake.texts("f1") == [world.fake.text(MSG, "vi")]


async def test_blocked_on_both_channels_fails_once_without_a_loop(world):
    tg, _ = await world.person()
    world.telegram.script("1", Outcome.blocked(), Outcome.blocked())
    world.fake.script("f1", Outcome.blocked(), Outcome.blocked())
    await world.queue(tg)

    await world.drain()

    rows = await world.rows()
    assert [(r.channel, r.status) for r in rows] == [("telegram", S.FAILED), ("fake", S.FAILED)]
    assert rows[1].last_error == "blocked"  # tried once on the fake channel, not sent back
    assert world.telegram.calls == [("send", "1")]
    assert world.fake.calls == [("send", "f1")]
    async with world.maker() as s:
        found = (await s.exec(select(Contact).order_by(Contact.id))).all()
    assert all(c.blocked_at is not None for c in found)


@pytest.mark.parametrize(
    "outcome",
    [Outcome.retry("server error 502"), Outcome.failed("bad request", code="bad_request")],
)
async def test_other_failures_do_not_fall_back(world, outcome):
    tg, _ = await world.person()
    world.telegram.script("1", *[outcome] * 10)
    await world.queue(tg)

    await world.drain()

    rows = await world.rows()
    assert [(r.channel, r.status) for r in rows] == [("telegram", S.FAILED)]
    assert world.fake.calls == []


@pytest.mark.parametrize("case", ["one channel", "citizen"])
async def test_without_another_contact_of_a_person_nothing_falls_back(world, case):
    tg, *_ = await world.person(fake=case != "one channel", citizen=case == "citizen")
    world.telegram.script("1", Outcome.blocked())
    await world.queue(tg)

    await world.drain()

    rows = await world.rows()
    assert [(r.status, r.last_error) for r in rows] == [(S.FAILED, "blocked")]
    assert world.fake.calls == []


async def test_a_group_chat_does_not_fall_back(world):
    await world.person()
    async with world.maker() as s:
        await outbox.enqueue_chat(
            s, channel="telegram", chat_id="1", message=MSG, kind="digest", now=world.clock.now()
        )
        await s.commit()
    world.telegram.script("1", Outcome.blocked())

    await world.drain()

    assert [r.status for r in await world.rows()] == [S.FAILED]
    assert world.fake.calls == []


# Directive status: on which channel each person was reached ----------------------------------


async def test_directive_status_says_on_which_channel_each_person_was_reached(maker):
    from io import BytesIO

    from openpyxl import load_workbook

    from bot.channels.render import plain, render
    from bot.config import Settings
    from bot.services.calendar import WorkCalendar
    from bot.services.org.access import system_actor
    from bot.services.reports.render import status_xlsx
    from bot.services.reports.xlsx import data_rows, header_row
    from handlers.directives import status_message

    async with maker() as s:
        unit = await f.unit(s, "VP", "Văn phòng Sở")
        an = await f.person(s, "A", unit, name="An")
        binh = await f.person(s, "B", unit, name="Bình")
        cuc = await f.person(s, "C", unit, name="Cúc")
        await link(s, an, "telegram", "1", seen_hours=2)
        await link(s, an, "zalo", "z1", seen_hours=1)
        await link(s, binh, "zalo", "z2")
        await link(s, cuc, "telegram", "3")
        draft = directives.Draft(
            "7/CV", T0.date(), "Tiêu đề", "Tóm tắt", directives.Target(units=("VP",))
        )
        actor = system_actor("test")
        issued = await directives.issue(
            s,
            actor=actor,
            draft=draft,
            now=T0,
            default_deadline=T0 + timedelta(days=3),
            cal=WorkCalendar(),
        )
        rows = (await s.exec(select(Outbox).order_by(Outbox.id))).all()
        assert [r.chat_id for r in rows] == ["1", "z2", "3"]  # one notice each
        for row in rows:  # An's Telegram notice bounced and went to Zalo; the others arrived
            row.status, row.sent_at = (S.FAILED, None) if row.chat_id == "1" else (S.SENT, T0)
            s.add(row)
        an_row = rows[0]
        s.add(
            Outbox(
                created_at=an_row.created_at,
                due_at=T0,
                status=S.SENT,
                sent_at=T0,
                kind=an_row.kind,
                ref_id=an_row.ref_id,
                channel="zalo",
                chat_id="z1",
                payload=an_row.payload,
            )
        )
        recipient = await s.get(DirectiveRecipient, rows[1].ref_id)
        recipient.acked_at, recipient.ack_channel = T0 + timedelta(hours=1), "zalo"
        s.add(recipient)
        await s.flush()
        status = await directives.status(s, actor=actor, directive_id=issued.directive.id)
    text = render(status_message(status), "vi", escape=plain)
    assert "Đã nhận qua: Telegram 1, Zalo 2" in text
    assert "Chưa xác nhận: An (Zalo), Cúc (Telegram)" in text
    book = load_workbook(BytesIO(status_xlsx(status, locale="vi", settings=Settings())))
    sheet = book["Người nhận"]
    assert [c.value for c in sheet[header_row(sheet)]][3:] == [
        "Đã nhận qua kênh",
        "Xác nhận qua kênh",
    ]
    assert data_rows(sheet) == [
        (1, "Văn phòng Sở", "An", "Zalo", None),
        (2, "Văn phòng Sở", "Bình", "Zalo", "Zalo"),
        (3, "Văn phòng Sở", "Cúc", "Telegram", None),
    ]


def test_the_official_account_s_outside_window_code_is_the_one_that_falls_back():
    from bot.channels import zalo_oa

    assert outbox.falls_back("failed", zalo_oa.OUTSIDE_WINDOW)
    assert not outbox.falls_back("failed", "bad_request")
