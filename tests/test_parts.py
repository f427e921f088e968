"""A long message goes in parts: a retry resumes at the first unsent part, never repeating one.

On the fake channel and on the sandbox (Telegram's Bot API and Zalo's), a 5xx or a 429 on the
second part; a process killed between two parts; a file whose text is too long for a caption;
and the reply path, which counts its parts in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.channels.contract import Outcome, send_parts
from bot.channels.render import split_text
from bot.channels.replies import Replies
from bot.channels.telegram import TelegramChannel
from bot.channels.telegram import limits_of as telegram_limits
from bot.channels.zalo import TEXT_MAX, ZaloApi, ZaloChannel
from bot.channels.zalo import limits_of as zalo_limits
from bot.config import DeliverySettings, ZaloSettings
from bot.i18n import t
from bot.messages import InboundEvent, OutboundMessage
from bot.models import OutboxStatus
from bot.sandbox import SandboxServer
from bot.sandbox.faults import Faults, MethodFault
from bot.sandbox.limits import Limits
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZaloSandbox
from jobs.dispatcher import Dispatcher
from jobs.pacing import Pacer
from tests import test_dispatcher as base
from tests.channels_fake import FAKE_LIMITS, FakeChannel
from tests.test_dispatcher import attachment, fake_people, unit_msg

db, fake_time, bot, world = base.db, base.fake_time, base.bot, base.world  # the fixtures, shared
S = OutboxStatus
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
FAILURES = {
    "5xx": (500, Outcome.retry("fake 502: bad gateway")),
    "429": (429, Outcome.flood(2.0, "bot")),
}


@pytest.fixture
async def sandbox(fake_time) -> AsyncIterator[SandboxServer]:
    """Give the sandbox with its Zalo side, both on the harness's fake time."""
    zalo = ZaloSandbox(clock=fake_time, wall=fake_time)
    server = SandboxServer(clock=fake_time, zalo=zalo)
    await server.start()
    yield server
    await server.stop()


def long_code(lines: int) -> str:
    """Return a unit code of many lines (about 50 characters each), to make a long message."""
    return "\n".join(f"Dòng {i:03d} " + "x" * 40 for i in range(lines))


def parts_of(code: str, limit: int) -> list[str]:
    """Return the parts a chat must hold, once each and in order."""
    return split_text(t("errors.unknown_unit", "vi", code=code), limit)


async def test_send_parts_starts_where_told_and_reports_how_many_are_out():
    seen: list[int] = []
    noted: list[int] = []

    def part(i: int, outcome: Outcome):
        async def call() -> Outcome:
            seen.append(i)
            return outcome

        return call

    async def note(n: int) -> None:
        noted.append(n)

    calls = [part(i, Outcome.sent(f"m{i}")) for i in range(3)]
    done = await send_parts(calls, first=1, progress=note)
    assert (seen, noted, done.parts, done.message_id) == ([1, 2], [2], 3, "m2")
    failing = [part(0, Outcome.sent("m0")), part(1, Outcome.retry("502")), calls[2]]
    seen.clear()
    assert (await send_parts(failing)).parts == 1
    assert seen == [0, 1]
    seen.clear()
    assert (await send_parts(calls, first=7)).parts == 3  # split otherwise now: the last again
    assert seen == [2]


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_a_failed_second_part_is_sent_again_alone_on_the_fake_channel(world, failure):
    fake = world.fake()
    (person,) = await fake_people(world, 1)
    code = long_code(100)  # about 5,000 characters: 3 parts of at most 2,000
    expected = parts_of(code, FAKE_LIMITS.text_max)
    assert len(expected) == 3
    fake.script(person.external_id, None, FAILURES[failure][1])
    await world.queue(person, unit_msg(code))

    await world.drain()

    assert fake.texts(person.external_id) == expected
    (row,) = await world.rows()
    assert (row.status, row.parts_sent) == (S.SENT, 3)


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_on_telegrams_sandbox_part_two_failing_repeats_no_part(world, failure):
    status = FAILURES[failure][0]
    world.sandbox.set_faults(Faults(methods={"sendmessage": MethodFault(status, times=1, after=1)}))
    (person,) = await world.users(1)
    code = long_code(100)  # 2 parts of at most 4,096
    await world.queue(person, unit_msg(code))

    await world.drain()

    assert world.texts(int(person.external_id)) == parts_of(code, 4096)
    assert world.sandbox.counters().method_faults_total == 1
    (row,) = await world.rows()
    assert (row.status, row.parts_sent, row.attempts) == (S.SENT, 2, 2 if status == 500 else 1)


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_on_zalos_sandbox_part_two_failing_repeats_no_part(world, failure):
    zalo = world.sandbox.zalo
    assert zalo is not None
    zalo.set_faults(Faults(methods={"sendmessage": MethodFault(FAILURES[failure][0], 1, 1)}))
    api = ZaloApi(DEFAULT_ZALO_TOKEN, world.sandbox.zalo_base_url)
    world.channels["zalo"] = ZaloChannel(api, TZ, zalo_limits(ZaloSettings()))  # type: ignore[assignment]
    (person,) = await fake_people(world, 1, channel="zalo")
    person_id = person.external_id
    zalo.create_user("Người dân", user_id=person_id)
    code = long_code(100)  # 3 parts of at most 2,000
    await world.queue(person, unit_msg(code))

    try:
        await world.drain()
    finally:
        await api.close()

    shown = [m.text for m in zalo.chat_log(person_id).messages if m.from_bot]
    assert shown == parts_of(code, TEXT_MAX)
    assert len(shown) == 3
    (row,) = await world.rows()
    assert (row.status, row.parts_sent) == (S.SENT, 3)


class Dying(FakeChannel):
    """A fake channel in a process that dies during its `die_at`-th part (after delivering it
    when `delivered`): that call never returns."""

    def __init__(self, *, die_at: int, delivered: bool) -> None:
        super().__init__("fake")
        self.die_at, self.delivered_first = die_at, delivered
        self.part_calls = 0
        self.died = asyncio.Event()

    async def _send_part(self, chat_id: str, text: str) -> Outcome:
        self.part_calls += 1
        if self.part_calls != self.die_at:
            return await super()._send_part(chat_id, text)
        if self.delivered_first:
            await super()._send_part(chat_id, text)
        self.died.set()
        await asyncio.Event().wait()  # the process is gone: no answer, no record
        raise AssertionError("unreachable")


@pytest.mark.parametrize("delivered", [True, False], ids=["in-flight-delivered", "not-delivered"])
async def test_a_process_killed_between_parts_repeats_at_most_the_part_in_flight(world, delivered):
    """The guarantee: the parts before the one in flight are stored as out before it goes, so
    the successor resumes there; only the part in flight may reach the person twice."""
    channel = Dying(die_at=2, delivered=delivered)
    channel.now = world.clock.now
    world.channels["fake"] = channel
    (person,) = await fake_people(world, 1)
    code = long_code(100)
    expected = parts_of(code, FAKE_LIMITS.text_max)
    await world.queue(person, unit_msg(code))

    first = world.current = world.dispatcher()
    running = asyncio.create_task(first.drain())
    await asyncio.wait_for(channel.died.wait(), 10)
    (row,) = await world.rows()
    assert (row.status, row.parts_sent) == (S.SENDING, 1)  # part 1 recorded before part 2 went
    for task in list(first._inflight):  # kill -9: nothing of that process runs any more
        task.cancel()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    channel.die_at = 0

    successor = world.current = Dispatcher(
        maker=world.db,
        channels={"fake": channel},
        settings=DeliverySettings(),
        clock=world.clock,
        owner="successor",
        sleep=world.sleep,
        lookahead=0.0,
    )
    await asyncio.wait_for(successor.drain(), 30)  # claims the row once its lease lapsed

    again = [expected[1]] if delivered else []
    assert channel.texts(person.external_id) == [expected[0], expected[1], *again, expected[2]]
    (row,) = await world.rows()
    assert (row.status, row.parts_sent, row.lease_owner) == (S.SENT, 3, "successor")


async def test_a_file_whose_text_is_too_long_for_a_caption_is_not_sent_twice(world):
    """The file goes bare, then its text in parts; a retry after the text failed resumes there."""
    fake = world.fake()
    (person,) = await fake_people(world, 1)
    doc = await attachment(world, b"%PDF-1.4 cong van", "cong-van.pdf", "application/pdf")
    code = long_code(30)  # about 1,500 characters: over the fake's caption of 500, one text part
    fake.script(person.external_id, Outcome.retry("fake 503"))
    await world.queue(person, unit_msg(code, attachment_id=doc))

    await world.drain()

    files = [d for d in fake.delivered if d.file_name]
    assert [(d.file_name, d.text) for d in files] == [("cong-van.pdf", "")]
    assert [d.text for d in fake.delivered if not d.file_name] == parts_of(code, 2000)
    assert fake.uploads == 1
    (row,) = await world.rows()
    assert (row.status, row.parts_sent) == (S.SENT, 2)


@pytest.mark.parametrize("trouble", ["502 once", "1/s per chat"])
async def test_on_telegrams_sandbox_a_file_then_its_long_text(world, trouble):
    """The text that failed once resumes after the file; held to 1/s, each waits its own slot."""
    if trouble == "502 once":
        world.sandbox.set_faults(Faults(methods={"sendmessage": MethodFault(502, times=1)}))
    else:
        world.sandbox.set_limits(Limits(shape="sliding", chat_burst=1))
    (person,) = await world.users(1)
    doc = await attachment(world, b"%PDF-1.4 cong van", "cong-van.pdf", "application/pdf")
    code = "x" * 1100  # over Telegram's caption of 1,024
    await world.queue(person, unit_msg(code, attachment_id=doc))

    await world.drain()

    document, text = world.sandbox.messages(int(person.external_id))
    assert document["document"]["file_name"] == "cong-van.pdf"
    assert text["text"] == t("errors.unknown_unit", "vi", code=code)
    assert world.sandbox.counters().rate_limited_total == 0
    (row,) = await world.rows()
    assert (row.status, row.parts_sent) == (S.SENT, 2)
    if trouble == "1/s per chat":
        assert row.attempts == 1


class Clock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_a_reply_in_parts_resumes_after_the_parts_out(failure):
    """Replies count their parts in memory, for as long as the reply is tried."""
    channel, clock = FakeChannel(), Clock()
    replies = Replies(channel, sleep=clock.sleep, monotonic=clock.monotonic)
    code = long_code(100)
    channel.script("7", None, FAILURES[failure][1], None, FAILURES[failure][1])

    outcome = await replies.send("7", unit_msg(code), "vi")

    assert outcome.ok
    assert channel.texts("7") == parts_of(code, FAKE_LIMITS.text_max)
    assert clock.now > 0  # it waited before each try


async def test_an_edit_whose_text_is_too_long_is_sent_anew_in_parts():
    channel = FakeChannel()
    channel.script("7", Outcome("failed", attempted=False, code="too_long"), method="edit")
    replies = Replies(channel)
    code = long_code(60)
    reply = OutboundMessage("errors.unknown_unit", {"code": code}, edit=True)
    event = base_event()

    await replies.deliver(event, [reply], "vi")

    assert channel.edits == []
    assert channel.texts("7") == parts_of(code, FAKE_LIMITS.text_max)


def base_event() -> InboundEvent:
    return InboundEvent(
        channel="fake", external_id="7", chat_id="7", action="ack:1", message_id="m9"
    )


# each part its own pacing slot ---------------------------------------------------------


@pytest.mark.parametrize("shape", ["bucket", "sliding", "fixed"])
async def test_on_telegrams_sandbox_each_part_waits_for_its_own_slot(world, shape):
    """Three 3-part notices to one chat held to 1 message/s (no burst): no 429, each part once."""
    world.sandbox.set_limits(Limits(shape=shape, chat_burst=1))
    (person,) = await world.users(1)
    codes = [long_code(200) + f"\n{n}" for n in range(3)]  # about 10,000 characters: 3 parts
    for code in codes:
        await world.queue(person, unit_msg(code))

    dispatcher = await world.drain()

    expected = [part for code in codes for part in parts_of(code, 4096)]
    assert len(expected) == 9
    assert world.texts(int(person.external_id)) == expected
    assert world.sandbox.counters().rate_limited_total == 0
    assert world.elapsed() >= 8  # nine messages to one chat at 1/s
    assert {(r.status, r.parts_sent, r.attempts) for r in await world.rows()} == {(S.SENT, 3, 1)}
    assert dispatcher.stats["sent"] == 3


async def test_parts_to_many_chats_keep_to_the_overall_limit(world):
    """Sixty 2-part notices to 60 chats on a strict 30/s: no 429, each part once."""
    world.sandbox.set_limits(Limits(shape="sliding"))
    people = await world.users(60)
    code = long_code(100)  # 2 parts of at most 4,096
    for c in people:
        await world.queue(c, unit_msg(code))

    await world.drain()

    assert world.sandbox.counters().rate_limited_total == 0
    assert all(world.texts(int(c.external_id)) == parts_of(code, 4096) for c in people)
    assert world.elapsed() >= 3  # 120 messages at 30/s


async def test_on_zalos_sandbox_each_part_waits_for_its_own_slot(world):
    zalo = world.sandbox.zalo
    assert zalo is not None
    zalo.set_limits(Limits(shape="sliding", global_rate=20, global_burst=20, chat_burst=1))
    api = ZaloApi(DEFAULT_ZALO_TOKEN, world.sandbox.zalo_base_url)
    world.channels["zalo"] = ZaloChannel(api, TZ, zalo_limits(ZaloSettings()))  # type: ignore[assignment]
    (person,) = await fake_people(world, 1, channel="zalo")
    zalo.create_user("Người dân", user_id=person.external_id)
    code = long_code(100)  # 3 parts of at most 2,000
    await world.queue(person, unit_msg(code))

    try:
        await world.drain()
    finally:
        await api.close()

    shown = [m.text for m in zalo.chat_log(person.external_id).messages if m.from_bot]
    assert shown == parts_of(code, TEXT_MAX)
    assert zalo.bot.counters.rate_limited_total == 0
    (row,) = await world.rows()
    assert (row.status, row.parts_sent, row.attempts) == (S.SENT, 3, 1)


async def test_a_reply_in_parts_takes_a_slot_per_part(world):
    """The reply path on the shared pacer: a 3-part reply to a chat held to 1/s, no 429."""
    world.sandbox.set_limits(Limits(shape="sliding", chat_burst=1))
    (person,) = await world.users(1)
    pacer = Pacer(telegram_limits(DeliverySettings()), world.clock)
    replies = Replies(TelegramChannel(world.bot, TZ), budget=pacer)
    code = long_code(200)
    ticking = asyncio.create_task(tick(world))

    try:
        outcome = await asyncio.wait_for(replies.send(person.external_id, unit_msg(code), "vi"), 20)
    finally:
        ticking.cancel()

    assert outcome.ok
    assert world.texts(int(person.external_id)) == parts_of(code, 4096)
    assert world.sandbox.counters().rate_limited_total == 0


async def tick(world) -> None:
    """Move the fake time on while a reply waits for its slots."""
    while True:
        await world.sleep(0.05)
