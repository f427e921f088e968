"""The reply path: replies, edits and button answers go through the channel contract, retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select
from telegram import Update

from bot.app import build_application
from bot.channels.contract import NOT_MODIFIED, Outcome
from bot.channels.replies import Replies
from bot.config import Settings
from bot.i18n import t
from bot.messages import InboundEvent, OutboundMessage
from bot.models import Contact
from bot.sandbox import DEFAULT_TOKEN, SandboxServer
from bot.sandbox import FakeTime as FakeSandboxTime
from bot.sandbox.faults import Faults, MethodFault
from bot.sandbox.limits import Limits
from tests import tg
from tests.channels_fake import FakeChannel

CHAT = "4242"
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


class FakeTime:
    """A monotonic clock that only sleeping moves; it remembers each wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        """Return the time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wait by moving the clock."""
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def replies(channel, time) -> Replies:
    return Replies(channel, sleep=time.sleep, monotonic=time.monotonic)


def text_event(**kw) -> InboundEvent:
    return InboundEvent(channel="fake", external_id=CHAT, chat_id=CHAT, text="/me", **kw)


def press_event(**kw) -> InboundEvent:
    return InboundEvent(
        channel="fake", external_id=CHAT, chat_id=CHAT, action="ack:1", message_id="m9", **kw
    )


def unit(code: str, **kw) -> OutboundMessage:
    return OutboundMessage("errors.unknown_unit", {"code": code}, **kw)


def seen(code: str) -> str:
    return t("errors.unknown_unit", "vi", code=code)


async def test_a_reply_that_met_a_flood_limit_waits_as_told_and_arrives_once(
    replies, channel, time
):
    channel.script(CHAT, Outcome.flood(4.0))

    outcome = await replies.deliver(text_event(), [unit("a")], "vi")

    assert outcome.kind == "sent"
    assert channel.texts(CHAT) == [seen("a")]
    assert time.waits == [4.0]


async def test_a_reply_that_met_server_errors_is_tried_again_with_backoff(replies, channel, time):
    channel.script(CHAT, Outcome.retry("500 Internal Server Error"), Outcome.retry("502"))

    await replies.deliver(text_event(), [unit("a"), unit("b")], "vi")

    assert channel.texts(CHAT) == [seen("a"), seen("b")]
    assert time.waits == [0.5, 1.0]


async def test_a_reply_is_given_up_after_three_attempts(replies, channel, time):
    channel.script(CHAT, *[Outcome.retry("500")] * 3)

    outcome = await replies.deliver(text_event(), [unit("a")], "vi")

    assert outcome.kind == "retry"
    assert channel.texts(CHAT) == []
    assert len(time.waits) == 2


async def test_a_wait_beyond_the_window_is_not_waited(replies, channel, time):
    channel.script(CHAT, Outcome.flood(45.0, scope="bot"))

    outcome = await replies.deliver(text_event(), [unit("a")], "vi")

    assert outcome.kind == "flood"
    assert time.waits == []


async def test_a_blocked_person_gets_nothing_more(replies, channel):
    channel.script(CHAT, Outcome.blocked())

    outcome = await replies.deliver(text_event(), [unit("a"), unit("b")], "vi")

    assert outcome.kind == "blocked"
    assert channel.calls == [("send", CHAT)]


async def test_a_press_is_answered_and_its_message_edited(replies, channel):
    await replies.deliver(press_event(press_id="q1"), [unit("a", edit=True)], "vi")

    assert channel.answered == ["q1"]
    assert channel.edits == [(CHAT, "m9", seen("a"))]
    assert channel.texts(CHAT) == []


async def test_an_edit_that_cannot_be_made_is_sent_anew(replies, channel):
    channel.script(CHAT, Outcome.failed("message can't be edited"), method="edit")

    await replies.deliver(press_event(press_id="q1"), [unit("a", edit=True)], "vi")

    assert channel.texts(CHAT) == [seen("a")]


async def test_an_edit_that_changes_nothing_is_not_sent_again(replies, channel):
    channel.script(CHAT, Outcome.sent("m9", code=NOT_MODIFIED), method="edit")

    await replies.deliver(press_event(press_id="q1"), [unit("a", edit=True)], "vi")

    assert channel.texts(CHAT) == []


async def test_a_flooded_button_answer_is_retried_too(replies, channel, time):
    channel.script("q1", Outcome.flood(1.0), method="answer")

    await replies.deliver(press_event(press_id="q1"), [unit("a")], "vi")

    assert channel.answered == ["q1"]
    assert time.waits == [1.0]
    assert channel.texts(CHAT) == [seen("a")]


async def test_a_press_is_answered_while_the_update_is_handled_and_replies_keep_order(
    replies, channel
):
    event = press_event(press_id="q1")

    answering = replies.answer_soon(event)
    await asyncio.sleep(0)  # the handler would run now
    assert channel.answered == ["q1"]
    outcome = await replies.deliver(event, [unit("a"), unit("b")], "vi", answering=answering)

    assert outcome.ok
    assert channel.answered == ["q1"]
    assert channel.texts(CHAT) == [seen("a"), seen("b")]


async def test_a_press_answered_meanwhile_by_someone_who_blocked_the_bot_tells_so(replies, channel):
    channel.script("q1", Outcome.blocked(), method="answer")
    event = press_event(press_id="q1")

    answering = replies.answer_soon(event)
    outcome = await replies.deliver(event, [], "vi", answering=answering)

    assert outcome.kind == "blocked"


class CountingBudget:
    """A budget that lets everything through and remembers what it was asked and told."""

    def __init__(self) -> None:
        self.acquired: list[str] = []
        self.reported: list[str] = []

    async def acquire(self, chat_id: str) -> None:
        self.acquired.append(chat_id)

    def report(self, chat_id: str, outcome: Outcome) -> None:
        self.reported.append(outcome.kind)


async def test_every_message_draws_on_the_budget_and_reports_back(channel, time):
    budget = CountingBudget()
    replies = Replies(channel, budget=budget, sleep=time.sleep, monotonic=time.monotonic)
    channel.script(CHAT, Outcome.flood(1.0))

    await replies.deliver(press_event(press_id="q1"), [unit("a")], "vi")

    assert channel.answered == ["q1"]
    assert budget.acquired == [CHAT, CHAT]  # the flooded send, the send: the answer is no message
    assert budget.reported == ["flood", "sent"]


class HeldBudget:
    """A budget that lets no call through until it is opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def acquire(self, chat_id: str) -> None:
        await self.open.wait()

    def report(self, chat_id: str, outcome: Outcome) -> None:
        pass


async def test_a_press_is_answered_without_waiting_for_the_chats_budget(channel, time):
    budget = HeldBudget()
    replies = Replies(channel, budget=budget, sleep=time.sleep, monotonic=time.monotonic)
    event = press_event(press_id="q1")

    answering = replies.answer_soon(event)
    delivering = asyncio.ensure_future(
        replies.deliver(event, [unit("a")], "vi", answering=answering)
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert channel.answered == ["q1"]  # the button stops spinning while the reply waits its turn
    assert channel.texts(CHAT) == []

    budget.open.set()
    assert (await delivering).ok
    assert channel.texts(CHAT) == [seen("a")]


class OneCallAtATime:
    """A budget that books calls per chat in order, as the pacer does: one in flight at a time."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0

    async def acquire(self, chat_id: str) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)  # a real budget may make the caller wait

    def report(self, chat_id: str, outcome: Outcome) -> None:
        self.in_flight -= 1


async def test_a_press_answered_meanwhile_and_the_replies_draw_on_the_budget_one_by_one(
    channel, time
):
    budget = OneCallAtATime()
    replies = Replies(channel, budget=budget, sleep=time.sleep, monotonic=time.monotonic)
    event = press_event(press_id="q1")

    answering = replies.answer_soon(event)
    await replies.deliver(event, [unit("a"), unit("b")], "vi", answering=answering)

    assert budget.most == 1
    assert channel.answered == ["q1"]
    assert channel.texts(CHAT) == [seen("a"), seen("b")]


# through the real Application -----------------------------------------------------------


@pytest.fixture
def waits(bot_harness) -> list[float]:
    """Make the application's reply path wait on a fake clock; return the waits."""
    fake = FakeTime()
    rt = bot_harness.app.bot_data["runtime"]
    rt.replies.sleep, rt.replies.monotonic = fake.sleep, fake.monotonic
    return fake.waits


async def test_a_reply_that_met_a_429_still_reaches_the_user(bot_harness, waits):
    api = bot_harness.api
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)

    texts = await bot_harness.send(5001, "/help")

    assert len(texts) == 2  # the refused request, then the same reply accepted
    assert texts[0] == texts[1] != t("errors.internal", "vi")
    assert not api.failures["sendMessage"]
    assert waits == [3.0]


async def test_a_reply_that_met_a_500_still_reaches_the_user(bot_harness, waits):
    api = bot_harness.api
    api.fail_next("sendMessage", 500, "Internal Server Error")
    api.fail_next("sendMessage", 502, "Bad Gateway")

    texts = await bot_harness.send(5002, "/help")

    assert len(texts) == 3  # two refused requests, then the same reply accepted
    assert len(set(texts)) == 1
    assert t("errors.internal", "vi") not in texts
    assert not api.failures["sendMessage"]
    assert waits == [0.5, 1.0]
    async with bot_harness.maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == "5002"))).one()
    assert contact.blocked_at is None


# against the sandbox, with its faults and limits -----------------------------------------


@pytest.fixture
async def live(maker, clock) -> AsyncIterator[tuple[Any, SandboxServer, list[float]]]:
    """Give an Application on the sandbox (fake time), whose replies wait on that time."""
    fake_time = FakeSandboxTime()
    server = SandboxServer(clock=fake_time)
    await server.start()
    settings = Settings(
        telegram={
            "token": DEFAULT_TOKEN,
            "api_base_url": server.base_url,
            "api_file_url": server.file_base_url,
        }
    )
    app = build_application(settings, maker=maker, clock=clock, rate_limit=False)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        fake_time.advance(seconds)

    rt = app.bot_data["runtime"]
    rt.replies.sleep, rt.replies.monotonic = sleep, fake_time
    yield app, server, waits
    await app.shutdown()
    await server.stop()


async def ask(app, server: SandboxServer, uid: int, text: str) -> list[str]:
    """Send text as a sandbox user; return the texts the bot has sent to that chat so far."""
    await app.process_update(Update.de_json(tg.text_update(uid, text), app.bot))
    return [m["text"] for m in server.messages(uid) if m["from"]["is_bot"]]


async def test_a_reply_that_met_the_sandboxs_500_still_reaches_the_user(live):
    app, server, waits = live
    uid = server.create_user("Nguyễn Văn An", user_id=8101).id
    server.set_faults(Faults(methods={"sendmessage": MethodFault(status=500, times=1)}))

    texts = await ask(app, server, uid, "/help")

    assert len(texts) == 1
    assert texts[0] != t("errors.internal", "vi")
    assert server.counters().method_faults_total == 1
    assert waits == [0.5]


async def test_a_reply_that_met_the_sandboxs_429_waits_it_out_and_arrives(live):
    app, server, waits = live
    uid = server.create_user("Trần Thị Bình", user_id=8102).id
    server.set_limits(Limits(chat_rate=1 / 3, chat_burst=1))

    first = await ask(app, server, uid, "/help")
    both = await ask(app, server, uid, "/help")

    assert len(first) == 1
    assert both == [first[0], first[0]]
    assert server.counters().rate_limited_total == 1
    assert waits == [3.0]
