"""The pacer on a line of fake seconds: the window rule, even spacing, learning, replies first."""

from __future__ import annotations

import asyncio

import pytest

from bot.channels.contract import Outcome
from bot.channels.replies import Replies
from bot.channels.telegram import limits_of
from bot.config import DeliverySettings
from bot.i18n import t
from bot.messages import OutboundMessage
from bot.sandbox.limits import FloodControl, Limits
from jobs.pacing import CATCH_UP, Pacer, Rate, Window
from tests.channels_fake import FAKE_LIMITS, FakeChannel


def run_against(
    pacer: Pacer, flood: FloodControl, clock: list[float], sends: int, rtt: float = 0.0
) -> tuple[int, float]:
    """Send to `sends` chats as fast as the pacer allows; return the 429s and the time taken."""
    refused = 0
    chat = 0
    start = clock[0]
    while chat < sends:
        now = clock[0]
        wait = pacer.wait(str(chat), False, False, now)
        assert wait is not None
        if wait > 0:
            clock[0] += wait
            continue
        ticket = pacer.take(str(chat), False, False, now)
        clock[0] += rtt
        retry_after = flood.admit(chat, False)
        if retry_after:
            refused += 1
            pacer.refused(ticket, retry_after, clock[0])
        else:
            pacer.answered(ticket, clock[0])
            chat += 1
    return refused, clock[0] - start


@pytest.mark.parametrize("shape", ["bucket", "sliding", "fixed"])
def test_at_the_told_limit_no_429_and_near_the_rate(shape: str) -> None:
    """300 sends at 30/s on each shape: no 429, and within 5 % of ten seconds."""
    clock = [1000.3]
    flood = FloodControl(Limits(shape=shape), lambda: clock[0])
    pacer = Pacer(limits_of(DeliverySettings()), now=lambda: clock[0])
    refused, took = run_against(pacer, flood, clock, 300, rtt=0.004)
    assert refused == 0
    assert 300 / took >= 0.95 * 30


@pytest.mark.parametrize("shape", ["sliding", "fixed"])
def test_a_lower_limit_it_was_not_told_costs_one_429(shape: str) -> None:
    """The platform allows 20/s while the settings say 30: one 429, then it keeps under."""
    clock = [1000.3]
    flood = FloodControl(Limits(shape=shape, global_rate=20), lambda: clock[0])
    pacer = Pacer(limits_of(DeliverySettings()), now=lambda: clock[0])
    refused, took = run_against(pacer, flood, clock, 600, rtt=0.004)
    assert refused == 1
    assert pacer.overall.rate.limit <= 20
    assert 600 / took >= 0.6 * 20


def test_a_lower_bucket_it_was_not_told_costs_one_429() -> None:
    """A 20/s bucket with a 20 burst under 30/s settings: one 429 for 300 sends."""
    clock = [1000.0]
    flood = FloodControl(Limits(global_rate=20, global_burst=20), lambda: clock[0])
    pacer = Pacer(limits_of(DeliverySettings()), now=lambda: clock[0])
    refused, _ = run_against(pacer, flood, clock, 300, rtt=0.004)
    assert refused == 1


def test_paid_rate_window_with_a_burst_quantum() -> None:
    """At 1,000/s, 20 sends may start together (and two more a late loop makes up)."""
    settings = DeliverySettings(paid_broadcast=True)
    pacer = Pacer(limits_of(settings), now=lambda: 0.0)
    started = 0
    while pacer.wait(str(started), False, True, 0.0) == 0:
        pacer.take(str(started), False, True, 0.0)
        started += 1
    assert started == 20 + CATCH_UP


def test_window_frees_a_slot_one_span_after_the_answer() -> None:
    """A send occupies the window until a span after its answer, however late that came."""
    window = Window(Rate(2.0, 1.0))
    window.take(0.0)
    window.take(0.5)
    assert window.wait(0.6) is None  # both under way: only an answer frees a slot
    window.answered_at(0.8)
    window.answered_at(0.9)
    wait = window.wait(1.0)
    assert wait is not None
    assert 0.8 < 1.0 + wait <= 1.81


def test_rate_climbs_back_slowly_to_what_it_was_refused_at() -> None:
    """After a 429 at 20 in the window: 10, then a step each two seconds, up to 20."""
    rate = Rate(30.0, 1.0)
    rate.refused(20, now=0.0)
    assert rate.limit == 10.0
    rate.climb(1.9)
    assert rate.limit == 10.0
    rate.climb(2.0)
    assert rate.limit == 11.5
    rate.climb(20.0)
    assert rate.limit == 20.0
    rate.climb(200.0)  # after a long calm it probes towards the configured 30
    assert 20.0 < rate.limit <= 30.0


async def test_a_waiting_reply_holds_bulk_sends_back_and_goes_first() -> None:
    """While a reply waits for a slot, bulk sends are told to wait; the reply takes the slot."""
    clock = [0.0]
    pacer = Pacer(limits_of(DeliverySettings(global_rate=1)), now=lambda: clock[0])
    first = pacer.take("1", False, False, 0.0)
    reply = asyncio.create_task(pacer.reply_slot("2"))
    await asyncio.sleep(0.01)
    assert pacer.wait("3", False, False, 0.0) is None  # bulk holds back
    pacer.answered(first, 0.0)
    clock[0] = 1.1
    ticket = await asyncio.wait_for(reply, 2)
    assert ticket.reply
    assert pacer.replies_waiting == 0
    assert pacer.wait("3", False, False, 1.1) is None  # the reply now fills the window


class Ticking:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        """Return the time."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Wait by moving the clock."""
        self.now += seconds


CHAT = "4242"


def unit(code: str) -> OutboundMessage:
    return OutboundMessage("errors.unknown_unit", {"code": code})


@pytest.mark.parametrize("first", [Outcome.flood(2.0), Outcome.retry("Internal Server Error")])
async def test_a_reply_meeting_a_429_or_a_5xx_on_the_pacer_is_retried_and_arrives(first):
    """Replies draw on the pacer: a 429 teaches it (bot scope, paused), then the reply arrives."""
    clock = Ticking()
    pacer = Pacer(FAKE_LIMITS, now=clock.monotonic)
    channel = FakeChannel()
    channel.script(CHAT, first)
    replies = Replies(channel, budget=pacer, sleep=clock.sleep, monotonic=clock.monotonic)

    outcome = await replies.send(CHAT, unit("a"), "vi")

    assert outcome.kind == "sent"
    assert channel.texts(CHAT) == [t("errors.unknown_unit", "vi", code="a")]
    assert pacer.overall.rate.refusals == (1 if first.kind == "flood" else 0)
    assert pacer.overall.flying == 0
    assert pacer.replies_waiting == 0


async def test_a_reply_waiting_only_for_its_own_chat_does_not_hold_the_outbox_back() -> None:
    """A notice just went to the person: their reply waits a second; other chats go on."""
    clock = [0.0]
    pacer = Pacer(limits_of(DeliverySettings()), now=lambda: clock[0])
    notice = pacer.take(CHAT, False, False, 0.0)
    pacer.answered(notice, 0.0)
    reply = asyncio.create_task(pacer.reply_slot(CHAT))
    await asyncio.sleep(0.01)
    assert pacer.replies_waiting == 0
    assert pacer.wait("other", False, False, 0.1) == 0
    clock[0] = 1.1
    pacer.answered(pacer.take("other", False, False, 0.1), 0.2)
    assert (await asyncio.wait_for(reply, 2)).reply
