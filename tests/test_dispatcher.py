"""The dispatcher against the sandbox Bot API with a real python-telegram-bot Bot, fake time."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import telegram
from sqlalchemy import text
from sqlmodel import SQLModel, select

from bot.channels.contract import Limits as ChannelLimits
from bot.channels.contract import Outcome
from bot.channels.http import AiohttpRequest
from bot.channels.replies import Replies
from bot.channels.telegram import TelegramChannel, limits_of
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db import SessionMaker, create_engine, session_maker
from bot.i18n import t
from bot.messages import Button, OutboundMessage
from bot.models import Attachment, AttachmentFile, Channel, Contact, JobLease, Outbox, OutboxStatus
from bot.sandbox import DEFAULT_TOKEN, FakeTime, SandboxServer
from bot.sandbox.faults import FaultRule, Faults
from bot.sandbox.limits import Limits
from bot.services.delivery import contacts as contact_service
from bot.services.delivery import outbox
from bot.services.delivery.lease import Lease
from jobs.dispatcher import Dispatcher
from jobs.runner import JobRunner
from tests import factories as f
from tests.channels_fake import FAKE_LIMITS, FakeChannel

S = OutboxStatus
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
BASE_UID = 7000


@pytest.fixture
async def db(db_url, tmp_path) -> AsyncIterator[SessionMaker]:
    """Give a database whose sessions have their own connections (a SQLite file, PostgreSQL)."""
    if db_url.startswith("sqlite"):
        db_url = f"sqlite+aiosqlite:///{tmp_path}/dispatch.db"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_maker(engine)
    await engine.dispose()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def sandbox(fake_time) -> AsyncIterator[SandboxServer]:
    server = SandboxServer(clock=fake_time)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(sandbox) -> AsyncIterator[telegram.Bot]:
    request = AiohttpRequest(connection_pool_size=40, pool_timeout=10.0)  # as the bot sends
    async with telegram.Bot(
        DEFAULT_TOKEN,
        base_url=sandbox.base_url,
        base_file_url=sandbox.file_base_url,
        request=request,
    ) as tg:
        yield tg


class Harness:
    """The dispatcher's world: database, sandbox, bot, and one fake time for both clocks."""

    def __init__(self, db, sandbox, bot, clock, fake_time) -> None:
        self.db, self.sandbox, self.bot, self.clock, self.fake_time = (
            db,
            sandbox,
            bot,
            clock,
            fake_time,
        )
        self.start = clock.now()
        self.hooks: list[Callable[[], Awaitable[None]]] = []
        self.current: Dispatcher | None = None
        self.channels: dict[str, FakeChannel] = {}

    def fake(self, limits: ChannelLimits = FAKE_LIMITS) -> FakeChannel:
        """Add a second channel, 'fake', that the dispatchers built from now on also send to."""
        channel = self.channels["fake"] = FakeChannel("fake", limits, now=self.clock.now)
        return channel

    async def sleep(self, seconds: float) -> None:
        """Move both fake clocks instead of sleeping; time stands still while sends go out."""
        if self.current is not None and self.current.in_flight:
            await asyncio.sleep(60)  # a finished send wakes the dispatcher and cancels this
            return
        step = timedelta(microseconds=math.ceil(seconds * 1e6))
        self.clock.advance(step)
        self.fake_time.advance(step.total_seconds())
        for hook in self.hooks:
            await hook()
        await asyncio.sleep(0.001)

    def dispatcher(self, **settings) -> Dispatcher:
        delivery = DeliverySettings(**settings)
        return Dispatcher(
            maker=self.db,
            channels={
                "telegram": TelegramChannel(self.bot, TZ, limits_of(delivery)),
                **self.channels,
            },
            settings=delivery,
            clock=self.clock,
            owner="test-dispatcher",
            sleep=self.sleep,
            max_in_flight=4,  # small, so that every test also meets the limit
            lookahead=0.0,  # on fake time, nothing is booked ahead
        )

    async def drain(self, **settings) -> Dispatcher:
        dispatcher = self.current = self.dispatcher(**settings)
        await asyncio.wait_for(dispatcher.drain(), 30)
        assert dispatcher.stats["batch_write_failed"] == 0
        return dispatcher

    async def users(self, n: int, *, locale: str = "vi") -> list[Contact]:
        """Create n sandbox users and their contacts."""
        async with self.db() as s:
            out = []
            for i in range(n):
                uid = BASE_UID + i
                self.sandbox.create_user(f"Người dùng {i}", user_id=uid)
                c = await f.contact(s, str(uid))
                c.locale = locale
                out.append(c)
            await s.commit()
        return out

    async def queue(self, contact: Contact, message: OutboundMessage, **kw) -> int:
        async with self.db() as s:
            row = await outbox.enqueue(
                s,
                contact=contact,
                message=message,
                kind=kw.pop("kind", "test"),
                now=self.clock.now(),
                **kw,
            )
            await s.commit()
            return row.id

    async def rows(self) -> list[Outbox]:
        async with self.db() as s:
            return list((await s.exec(select(Outbox).order_by(Outbox.id))).all())

    def texts(self, chat_id: int) -> list[str]:
        return [m.get("text") or m.get("caption") for m in self.sandbox.messages(chat_id)]

    def elapsed(self) -> float:
        return (self.clock.now() - self.start).total_seconds()


@pytest.fixture
def world(db, sandbox, bot, clock, fake_time) -> Harness:
    return Harness(db, sandbox, bot, clock, fake_time)


def unit_msg(code: str, **kw) -> OutboundMessage:
    return OutboundMessage("errors.unknown_unit", {"code": code}, **kw)


async def test_every_chat_gets_its_messages_once_in_order_within_the_limits(world):
    people = await world.users(20)
    for k in range(3):
        for c in people:
            await world.queue(c, unit_msg(f"{c.external_id}-{k}"))
    group = world.sandbox.create_group("Tổ một cửa", [BASE_UID])
    async with world.db() as s:
        await outbox.enqueue_chat(
            s,
            channel=Channel.TELEGRAM,
            chat_id=str(group.id),
            message=unit_msg("group"),
            kind="digest",
            now=world.clock.now(),
        )
        await s.commit()

    dispatcher = await world.drain()

    for c in people:
        expected = [t("errors.unknown_unit", "vi", code=f"{c.external_id}-{k}") for k in range(3)]
        assert world.texts(int(c.external_id)) == expected
    assert world.texts(group.id) == [t("errors.unknown_unit", "vi", code="group")]
    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}
    assert all(r.attempts == 1 and r.sent_at is not None for r in rows)
    sandbox_ids = {
        str(m["message_id"]) for c in people for m in world.sandbox.messages(int(c.external_id))
    }
    assert {r.platform_message_id for r in rows if not r.is_group} == sandbox_ids
    counters = world.sandbox.counters()
    assert counters.accepted_total == 61
    assert counters.rate_limited_total == 0  # paced at 30/s overall and 1/s per chat
    assert world.elapsed() >= 2.0  # three messages to one chat take at least two seconds
    assert dispatcher.stats["sent"] == 61


async def test_flood_limits_are_waited_out_without_duplicates(world):
    people = await world.users(60)
    for c in people:
        await world.queue(c, unit_msg(c.external_id))
    world.sandbox.set_limits(Limits(global_rate=30, global_burst=10))

    dispatcher = await world.drain(global_rate=200)

    for c in people:
        assert world.texts(int(c.external_id)) == [
            t("errors.unknown_unit", "vi", code=c.external_id)
        ]
    counters = world.sandbox.counters()
    assert counters.rate_limited_total > 0
    assert dispatcher.stats["flood"] == counters.rate_limited_total
    assert counters.accepted_total == 60
    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}
    assert all(r.attempts == 1 for r in rows)  # waiting out a 429 is not a failed attempt
    assert all(r.last_error is None for r in rows)


async def test_a_chat_over_its_own_limit_waits_while_others_go_on(world):
    busy, other = await world.users(2)
    for k in range(4):
        await world.queue(busy, unit_msg(f"busy-{k}"))
    await world.queue(other, unit_msg("other"))
    world.sandbox.set_limits(Limits(chat_rate=1, chat_burst=1))

    await world.drain(chat_rate=5)  # configured too high on purpose: the sandbox says 429

    assert world.texts(int(busy.external_id)) == [
        t("errors.unknown_unit", "vi", code=f"busy-{k}") for k in range(4)
    ]
    assert world.texts(int(other.external_id)) == [t("errors.unknown_unit", "vi", code="other")]
    assert world.sandbox.counters().rate_limited_by_chat[int(busy.external_id)] >= 1


async def test_a_user_who_blocked_the_bot_is_marked_and_not_tried_again(world):
    blocker, fine = await world.users(2)
    first = await world.queue(blocker, unit_msg("1"))
    second = await world.queue(blocker, unit_msg("2"))
    ok = await world.queue(fine, unit_msg("3"))
    world.sandbox.set_faults(Faults(blocked=frozenset({int(blocker.external_id)})))

    await world.drain()

    rows = {r.id: r for r in await world.rows()}
    assert rows[first].status == S.FAILED
    assert rows[first].last_error == "blocked"
    assert rows[second].status == S.FAILED
    assert rows[second].last_error == "blocked"
    assert rows[ok].status == S.SENT
    assert world.sandbox.counters().forbidden_total == 1
    async with world.db() as s:
        stored = await contact_service.find(s, channel="telegram", external_id=blocker.external_id)
        assert stored.blocked_at is not None
        # and nothing more is queued for them
        assert (
            await outbox.enqueue(
                s, contact=stored, message=unit_msg("4"), kind="t", now=world.clock.now()
            )
            is None
        )
    assert world.texts(int(fine.external_id)) == [t("errors.unknown_unit", "vi", code="3")]


async def test_server_errors_are_retried_with_backoff_then_given_up(world):
    flaky, broken = await world.users(2)
    flaky_row = await world.queue(flaky, unit_msg("flaky"))
    broken_row = await world.queue(broken, unit_msg("broken"))
    world.sandbox.set_chat_faults(int(flaky.external_id), FaultRule(error_rate=1.0))
    world.sandbox.set_chat_faults(int(broken.external_id), FaultRule(error_rate=1.0))

    async def heal() -> None:
        if world.elapsed() >= 2:
            world.sandbox.set_chat_faults(int(flaky.external_id), None)

    world.hooks.append(heal)
    await world.drain(max_attempts=3, backoff_seconds=5)

    rows = {r.id: r for r in await world.rows()}
    healed, dead = rows[flaky_row], rows[broken_row]
    assert (healed.status, healed.attempts) == (S.SENT, 2)
    assert healed.sent_at - world.start >= timedelta(seconds=5)
    assert world.texts(int(flaky.external_id)) == [t("errors.unknown_unit", "vi", code="flaky")]
    assert (dead.status, dead.attempts) == (S.FAILED, 3)
    assert "Internal Server Error" in dead.last_error
    assert world.texts(int(broken.external_id)) == []
    assert world.elapsed() >= 5 + 10  # backoff 5 s, then 10 s, then given up


async def test_a_dropped_connection_is_retried(world):
    (user,) = await world.users(1)
    row_id = await world.queue(user, unit_msg("drop"))
    world.sandbox.set_chat_faults(int(user.external_id), FaultRule(drop_rate=1.0))

    async def heal() -> None:
        world.sandbox.set_chat_faults(int(user.external_id), None)

    world.hooks.append(heal)
    await world.drain()

    row = {r.id: r for r in await world.rows()}[row_id]
    assert (row.status, row.attempts) == (S.SENT, 2)
    assert world.texts(int(user.external_id)) == [t("errors.unknown_unit", "vi", code="drop")]


async def test_a_permanent_bad_request_fails_at_once_with_the_reason(world):
    (user,) = await world.users(1)
    row_id = await world.queue(user, OutboundMessage("<b>not closed"))
    await world.drain()
    row = (await world.rows())[0]
    assert row.id == row_id
    assert (row.status, row.attempts) == (S.FAILED, 1)
    assert row.last_error.startswith("bad request: Can't parse entities")
    assert world.texts(int(user.external_id)) == []


async def test_an_unreadable_payload_fails_without_a_request(world):
    (user,) = await world.users(1)
    row_id = await world.queue(user, unit_msg("x"))
    async with world.db() as s:
        row = await s.get(Outbox, row_id)
        row.payload = "{not json"
        s.add(row)
        await s.commit()
    await world.drain()
    row = (await world.rows())[0]
    assert row.status == S.FAILED
    assert row.last_error.startswith("unreadable payload")
    assert world.sandbox.counters().by_method["sendMessage"] == 0


async def test_cancelled_rows_never_leave(world):
    a, b = await world.users(2)
    for k in range(3):
        await world.queue(a, unit_msg(f"a{k}"), ref_id=1, kind="broadcast")
    await world.queue(b, unit_msg("b"), ref_id=2, kind="broadcast")
    async with world.db() as s:
        assert await outbox.cancel(s, kind="broadcast", ref_id=1) == 3
        await s.commit()
    await world.drain()
    assert world.texts(int(a.external_id)) == []
    assert world.texts(int(b.external_id)) == [t("errors.unknown_unit", "vi", code="b")]


async def test_a_cancel_between_claim_and_send_wins(world):
    (user,) = await world.users(1)
    for k in range(4):
        await world.queue(user, unit_msg(f"n{k}"), ref_id=9, kind="broadcast")
    cancelled: list[int] = []

    async def cancel_after_first() -> None:
        if not cancelled and world.texts(int(user.external_id)):
            async with world.db() as s:
                cancelled.append(await outbox.cancel(s, kind="broadcast", ref_id=9))
                await s.commit()

    world.hooks.append(cancel_after_first)
    await world.drain()  # one message per second to this chat: the rest is claimed, waiting

    assert world.texts(int(user.external_id)) == [t("errors.unknown_unit", "vi", code="n0")]
    assert cancelled == [3]
    async with world.db() as s:
        progress = await outbox.progress(s, kind="broadcast", ref_id=9)
    assert (progress[S.SENT], progress[S.CANCELLED]) == (1, 3)


def tiny_png() -> bytes:
    """Return a valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def attachment(world, data: bytes, name: str, mime: str) -> int:
    async with world.db() as s:
        row = Attachment(
            file_name=name,
            mime_type=mime,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
            created_at=world.clock.now(),
        )
        s.add(row)
        await s.commit()
        return row.id


async def test_documents_go_with_their_caption_and_are_uploaded_once(world):
    people = await world.users(4)
    pdf = b"%PDF-1.4 cong van so 123\n" * 50
    doc = await attachment(world, pdf, "cong-van-123.pdf", "application/pdf")
    buttons = ((Button("errors.unknown_unit", "ack:1", {"code": "OK"}),),)
    for c in people[:3]:
        await world.queue(c, unit_msg(c.external_id, attachment_id=doc, buttons=buttons))
    long_code = "x" * 1100
    await world.queue(people[3], unit_msg(long_code, attachment_id=doc))

    await world.drain()

    sent = [world.sandbox.messages(int(c.external_id)) for c in people]
    for c, messages in zip(people[:3], sent[:3], strict=True):
        (m,) = messages
        assert m["caption"] == t("errors.unknown_unit", "vi", code=c.external_id)
        assert m["document"]["file_name"] == "cong-van-123.pdf"
        assert m["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ack:1"
    document, text = sent[3]
    assert document.get("caption") is None
    assert document["document"]["file_size"] == len(pdf)
    assert text["text"] == t("errors.unknown_unit", "vi", code=long_code)
    file_ids = {m["document"]["file_id"] for messages in sent for m in messages if "document" in m}
    assert len(file_ids) == 1  # uploaded once, then sent again by its id
    async with world.db() as s:
        stored = await s.get(AttachmentFile, (doc, "telegram"))
    assert stored.file_id in file_ids
    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}
    assert rows[3].platform_message_id == str(text["message_id"])


async def test_photos_and_a_stale_file_id(world):
    a, b = await world.users(2)
    photo = await attachment(world, tiny_png(), "qr.png", "image/png")
    async with world.db() as s:
        s.add(
            AttachmentFile(attachment_id=photo, channel="telegram", file_id="AgACstale-unknown-id")
        )
        await s.commit()
    await world.queue(a, unit_msg("a", attachment_id=photo, media="photo"))
    await world.queue(b, unit_msg("b", attachment_id=photo, media="photo"))

    await world.drain()

    ma, mb = world.sandbox.messages(int(a.external_id)), world.sandbox.messages(int(b.external_id))
    assert ma[0]["caption"] == t("errors.unknown_unit", "vi", code="a")
    assert ma[0]["photo"][-1]["file_id"] == mb[0]["photo"][-1]["file_id"] != "AgACstale-unknown-id"
    assert {r.status for r in await world.rows()} == {S.SENT}


async def test_the_language_is_the_contacts_at_send_time(world):
    vi_user, en_user = await world.users(2)
    await world.queue(vi_user, unit_msg("L1"))
    await world.queue(en_user, unit_msg("L2"))
    async with world.db() as s:
        stored = await s.get(Contact, en_user.id)
        await contact_service.set_locale(s, contact=stored, locale="en")
        await s.commit()
    await world.drain()
    assert world.texts(int(vi_user.external_id)) == [t("errors.unknown_unit", "vi", code="L1")]
    assert world.texts(int(en_user.external_id)) == ["No unit has the code L2."]


async def test_paid_rows_use_the_paid_limit_when_enabled(world):
    people = await world.users(50)
    for c in people:
        await world.queue(c, unit_msg(c.external_id), paid=True)
    world.sandbox.set_limits(Limits(global_rate=30, global_burst=1))

    await world.drain(paid_broadcast=True)

    assert world.sandbox.counters().rate_limited_total == 0
    assert world.elapsed() < 1.0  # 50 messages under 1000/s, not 30/s
    assert all(len(world.texts(int(c.external_id))) == 1 for c in people)


# a second channel ---------------------------------------------------------------------


async def fake_people(world, n: int, *, channel: str = "fake") -> list[Contact]:
    """Create n contacts on another channel than Telegram."""
    async with world.db() as s:
        out = [
            Contact(channel=channel, external_id=f"f{i}", locale="vi", created_at=world.clock.now())
            for i in range(n)
        ]
        s.add_all(out)
        await s.commit()
    return out


async def test_two_channels_drain_at_once_each_through_its_own_adapter(world):
    fake = world.fake()
    tg_people, fake_ones = await world.users(3), await fake_people(world, 3)
    pdf = b"%PDF-1.4 cong van so 7\n" * 20
    doc = await attachment(world, pdf, "cong-van-7.pdf", "application/pdf")
    for c in tg_people + fake_ones:
        await world.queue(c, unit_msg(f"{c.external_id}-text"))
        await world.queue(c, unit_msg(f"{c.external_id}-file", attachment_id=doc))

    await world.drain()

    def expected(c: Contact) -> list[str]:
        return [
            t("errors.unknown_unit", "vi", code=f"{c.external_id}-{k}") for k in ("text", "file")
        ]

    for c in tg_people:
        assert world.texts(int(c.external_id)) == expected(c)
    for c in fake_ones:
        assert fake.texts(c.external_id) == expected(c)
    assert world.sandbox.counters().accepted_total == 6  # nothing of the fake channel's
    assert fake.uploads == 1  # uploaded once to the fake channel, then sent by its id
    tg_file_ids = {
        m["document"]["file_id"]
        for c in tg_people
        for m in world.sandbox.messages(int(c.external_id))
        if "document" in m
    }
    async with world.db() as s:
        stored = {r.channel: r.file_id for r in (await s.exec(select(AttachmentFile))).all()}
    assert stored == {"fake": "fake-file-1", "telegram": tg_file_ids.pop()}
    assert not tg_file_ids  # one file id on Telegram too
    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}
    fake_ids = {d.message_id for d in fake.delivered}
    assert {r.platform_message_id for r in rows if r.channel == "fake"} == fake_ids


async def test_a_second_channels_outcomes_are_recorded_like_telegrams(world):
    fake = world.fake()
    flooded, blocker, broken, flaky, filer = await fake_people(world, 5)
    fake.script("f0", Outcome.flood(3.0))
    fake.script("f1", Outcome.blocked("user blocked the official account"))
    fake.script("f2", Outcome.failed("bad request: chat not found", code="bad_request"))
    fake.script("f3", Outcome.retry("server error 502"))
    doc = await attachment(world, b"%PDF-1.4 x", "ke-hoach.pdf", "application/pdf")
    async with world.db() as s:
        s.add(AttachmentFile(attachment_id=doc, channel="fake", file_id="expired-id"))
        await s.commit()
    ids = [await world.queue(c, unit_msg(c.external_id)) for c in (flooded, blocker, broken, flaky)]
    ids.append(await world.queue(filer, unit_msg("file", attachment_id=doc)))

    dispatcher = await world.drain(backoff_seconds=1)

    rows = {r.id: r for r in await world.rows()}
    flood_row, blocked_row, broken_row, flaky_row, file_row = (rows[i] for i in ids)
    assert flood_row.status == S.SENT
    assert flood_row.attempts == 1  # a flood is no failed attempt
    assert (flood_row.sent_at - world.start).total_seconds() >= 3.0
    assert (blocked_row.status, blocked_row.last_error) == (S.FAILED, "blocked")
    assert (broken_row.status, broken_row.last_error) == (S.FAILED, "bad request: chat not found")
    assert (flaky_row.status, flaky_row.attempts) == (S.SENT, 2)
    assert file_row.status == S.SENT
    assert fake.texts("f0") == [t("errors.unknown_unit", "vi", code="f0")]
    assert fake.texts("f1") == fake.texts("f2") == []
    assert fake.uploads == 1  # the stale id was dropped and the bytes uploaded again
    async with world.db() as s:
        stored = await s.get(AttachmentFile, (doc, "fake"))
        marked = await s.get(Contact, blocker.id)
    assert stored.file_id == "fake-file-1"
    assert marked.blocked_at is not None
    assert (dispatcher.stats["flood"], dispatcher.stats["blocked"]) == (1, 1)
    assert world.sandbox.counters().accepted_total == 0


async def test_each_channel_keeps_its_own_limits_and_its_own_floods(world):
    fake = world.fake(ChannelLimits(overall=2.0, per_chat=1.0, per_group=1.0))
    tg_people, fake_ones = await world.users(10), await fake_people(world, 10)
    fake.script("f0", Outcome.flood(10.0, scope="bot"))  # the whole fake bot is limited
    for c in fake_ones + tg_people:
        await world.queue(c, unit_msg(c.external_id))

    await world.drain()

    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}
    tg_done = max(
        (r.sent_at - world.start).total_seconds() for r in rows if r.channel == "telegram"
    )
    assert tg_done < 1.0  # Telegram went on at its own 30/s while the fake channel waited
    fake_at = sorted((d.at - world.start).total_seconds() for d in fake.delivered)
    assert len(fake_at) == 10
    assert fake_at[0] >= 10.0  # nothing went to the fake channel while it was flood-limited
    assert all(b - a >= 0.5 - 1e-3 for a, b in itertools.pairwise(fake_at))  # its 2/s


async def test_rows_of_a_channel_without_an_adapter_fail_unsent(world):
    (person,) = await fake_people(world, 1, channel="zalo")
    row_id = await world.queue(person, unit_msg("z"))

    await world.drain()

    (row,) = [r for r in await world.rows() if r.id == row_id]
    assert row.status == S.FAILED
    assert row.last_error == "no zalo channel"
    assert row.attempts == 0


# the job runner ---------------------------------------------------------------------


async def test_one_runner_holds_the_lease_dispatches_and_sweeps(db, sandbox, bot):
    sandbox.set_limits(Limits.off())
    clock = SystemClock()
    world = Harness(db, sandbox, bot, clock, FakeTime())
    people = await world.users(10)
    settings = DeliverySettings(poll_seconds=0.05, lease_seconds=5)
    runners, swept = [], {"r0": 0, "r1": 0}
    for i in range(2):
        lease = Lease(db, clock=clock, seconds=1.0, owner=f"r{i}")
        dispatcher = Dispatcher(
            maker=db,
            channels={"telegram": TelegramChannel(bot, TZ, limits_of(settings))},
            settings=settings,
            clock=clock,
            owner=lease.owner,
        )
        runner = JobRunner(lease=lease, dispatcher=dispatcher, retry_seconds=0.1)

        async def sweep(name=lease.owner) -> None:
            swept[name] += 1

        runner.add_sweep("count", sweep, 0.05)
        runners.append(runner)
    try:
        for runner in runners:
            await runner.start()
        for c in people:
            await world.queue(c, unit_msg(c.external_id))
        for c in people:
            await sandbox.wait_for_messages(int(c.external_id), 1, seconds=10)
        holders = [r for r in runners if r.holding]
        assert len(holders) == 1
        first, second = holders[0], next(r for r in runners if r is not holders[0])
        await asyncio.sleep(0.3)
        assert swept[first.lease.owner] >= 2
        assert swept[second.lease.owner] == 0
        await first.stop()
        for c in people:
            await world.queue(c, unit_msg(c.external_id + "-2"))
        for c in people:
            await sandbox.wait_for_messages(int(c.external_id), 2, seconds=10)
        assert second.holding
        assert swept[second.lease.owner] >= 1
    finally:
        for runner in runners:
            await runner.stop()
    for c in people:
        assert len(world.texts(int(c.external_id))) == 2
    assert {r.status for r in await world.rows()} == {S.SENT}


async def steal_lease(db, runner: JobRunner, thief: Lease) -> None:
    """Take the job lease away from a runner behind its back."""
    if runner.lease.postgres:
        pid = (await runner.lease._conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        async with db() as s:
            await s.exec(text(f"SELECT pg_terminate_backend({int(pid)})"))
        async with asyncio.timeout(5):
            while True:
                if await thief.acquire():
                    break
                await asyncio.sleep(0.05)  # the server frees the lock soon
    else:
        async with db() as s:
            row = await s.get(JobLease, "jobs")
            row.owner, row.expires_at = thief.owner, thief.clock.now() + timedelta(seconds=60)
            s.add(row)
            await s.commit()
        thief.held = True


async def eventually(predicate, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


async def test_sweeps_run_on_the_scheduler_and_everything_stops_when_the_lease_is_lost(
    db, sandbox, bot
):
    sandbox.set_limits(Limits.off())
    clock = SystemClock()
    world = Harness(db, sandbox, bot, clock, FakeTime())
    (user,) = await world.users(1)
    lease = Lease(db, clock=clock, seconds=1.0, owner="runner")
    dispatcher = Dispatcher(
        maker=db,
        channels={"telegram": TelegramChannel(bot, TZ)},
        settings=DeliverySettings(poll_seconds=0.05),
        clock=clock,
        owner=lease.owner,
    )
    runner = JobRunner(lease=lease, dispatcher=dispatcher)
    runner.retry_seconds = 0.1
    runs: list[int] = []

    async def sweep() -> None:
        runs.append(1)

    runner.add_sweep("count", sweep, 0.05)
    thief = Lease(db, clock=clock, seconds=60, owner="thief")
    try:
        await runner.start()
        await eventually(lambda: len(runs) >= 3)
        assert [job.name for job in runner.scheduler.get_jobs()] == ["sweep:count"]
        await world.queue(user, unit_msg("before"))
        await sandbox.wait_for_messages(int(user.external_id), 1)

        await steal_lease(db, runner, thief)
        await eventually(lambda: not runner.holding)
        await eventually(lambda: not runner.scheduler.get_jobs())
        seen = len(runs)
        await world.queue(user, unit_msg("while lost"))
        await asyncio.sleep(0.5)
        assert len(runs) == seen  # no sweep without the lease
        assert world.texts(int(user.external_id)) == [t("errors.unknown_unit", "vi", code="before")]

        await thief.release()
        await sandbox.wait_for_messages(int(user.external_id), 2)
        assert runner.holding
        await eventually(lambda: len(runs) > seen)
    finally:
        await runner.stop()
        await thief.release()
    assert world.texts(int(user.external_id))[-1] == t(
        "errors.unknown_unit", "vi", code="while lost"
    )
    assert await lease_row_owner(db) is None  # stop() gave the lease back


async def lease_row_owner(db) -> str | None:
    async with db() as s:
        row = await s.get(JobLease, "jobs")
        return row.owner if row else None


async def test_one_ownership_read_covers_every_held_row(world, monkeypatch):
    people = await world.users(20)
    for c in people:
        await world.queue(c, unit_msg(c.external_id))
    world.sandbox.set_limits(Limits.off())
    reads: list[int] = []
    real = outbox.targets

    async def counted(session, *, row_ids, owner):
        reads.append(len(row_ids))
        return await real(session, row_ids=row_ids, owner=owner)

    monkeypatch.setattr(outbox, "targets", counted)
    await world.drain(global_rate=1000)  # four sends at a time, time standing still meanwhile

    assert reads == [20]  # not one read per launch of four
    assert all(
        world.texts(int(c.external_id)) == [t("errors.unknown_unit", "vi", code=c.external_id)]
        for c in people
    )
    assert {r.status for r in await world.rows()} == {S.SENT}


# pacing against each limiter shape ----------------------------------------------------


@pytest.mark.parametrize("shape", ["bucket", "sliding", "fixed"])
async def test_no_429_on_any_limiter_shape(world, shape):
    """90 messages to 90 chats at the told 30/s on each shape: no 429, each sent once."""
    people = await world.users(90)
    for c in people:
        await world.queue(c, unit_msg(c.external_id))
    world.sandbox.set_limits(Limits(shape=shape))

    dispatcher = await world.drain()

    assert world.sandbox.counters().rate_limited_total == 0
    assert all(len(world.texts(int(c.external_id))) == 1 for c in people)
    assert dispatcher.stats["sent"] == 90


@pytest.mark.parametrize("shape", ["bucket", "sliding", "fixed"])
async def test_a_limit_it_was_not_told_costs_at_most_one_429(world, shape):
    """The sandbox allows 20/s, the settings say 30/s: one 429 at most, nothing lost or doubled."""
    people = await world.users(120)
    for c in people:
        await world.queue(c, unit_msg(c.external_id))
    world.sandbox.set_limits(Limits(shape=shape, global_rate=20, global_burst=20))

    dispatcher = await world.drain()

    counters = world.sandbox.counters()
    assert counters.rate_limited_total <= 1
    assert counters.accepted_total == 120
    assert all(len(world.texts(int(c.external_id))) == 1 for c in people)
    assert dispatcher.pacer.overall.rate.limit <= 20
    rows = await world.rows()
    assert {r.status for r in rows} == {S.SENT}


async def test_a_waiting_reply_goes_before_the_outbox_on_the_same_budget(world):
    """60 notices are going out at 30/s; a person's reply asked meanwhile is next, not last."""
    asker, *crowd = await world.users(61)
    for c in crowd:
        await world.queue(c, unit_msg(c.external_id))
    dispatcher = world.current = world.dispatcher()
    replies = Replies(TelegramChannel(world.bot, TZ), budget=dispatcher.pacer)
    draining = asyncio.create_task(dispatcher.drain())
    await world.sandbox.wait_for_messages(int(crowd[9].external_id), 1, seconds=20)

    outcome = await asyncio.wait_for(replies.send(asker.external_id, unit_msg("me"), "vi"), 20)
    notices_before = world.sandbox.counters().accepted_total - 1
    await asyncio.wait_for(draining, 30)

    assert outcome.ok
    assert world.texts(int(asker.external_id)) == [t("errors.unknown_unit", "vi", code="me")]
    assert notices_before < 20  # of 60: it did not wait for the outbox to drain
    assert world.sandbox.counters().accepted_total == 61
    assert world.sandbox.counters().rate_limited_total == 0


async def test_a_retried_row_keeps_its_place_in_its_chat(world):
    fake = world.fake()
    (person,) = await fake_people(world, 1)
    fake.script("f0", Outcome.retry("server error 502"))
    first = await world.queue(person, unit_msg("summary"))
    second = await world.queue(person, unit_msg("chart"))

    await world.drain(backoff_seconds=1)

    rows = {r.id: r for r in await world.rows()}
    assert (rows[first].status, rows[first].attempts) == (S.SENT, 2)
    assert rows[second].status == S.SENT
    assert fake.texts("f0") == [
        t("errors.unknown_unit", "vi", code="summary"),
        t("errors.unknown_unit", "vi", code="chart"),
    ]  # the second never overtakes the first, retried a second later
