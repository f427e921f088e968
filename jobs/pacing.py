"""Pacing: what may be sent when, per scope (overall, paid, per chat, per group).

A platform's flood limiter may be a token bucket, a strict sliding window or a fixed window per
calendar second, and the network delays each request by a little. The one rule safe under all
of them without a burst: at most `limit` sends in a window of `span` seconds, where a send
occupies its slot from the moment it starts until `span` after its answer came back (the
platform counted it somewhere in between). Sends are also spread evenly (a `span / limit` gap,
with a small quantum of burst at high rates), so that when a limit is lower than configured,
few sends are under way when the first 429 arrives. After a 429 a scope's limit drops to half
of what it had in its window, then climbs back by small steps while no 429 comes, no higher
than what it had when it was refused; past that only after a long calm.

Replies come first: while a person's reply waits for a slot, bulk sends are held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.channels.contract import Limits, Outcome
from bot.clock import Clock

PACERS_KEY = "pacers"  # runtime.extra: the pacer of each channel, shared by replies and outbox
SAFETY = 0.005  # seconds added to every window: clocks and timers are not exact
BACKOFF = 0.5  # after a 429, the limit becomes this share of the sends in the window
CLIMB_SPANS = 2.0  # windows without a 429 between two steps up
CLIMB_SHARE = 0.05  # each step up: this share of the configured limit (at least one send)
CALM_SPANS = 30.0  # windows without a 429 before climbing past the limit that was refused
FLOOR_SHARE = 0.05  # the limit never drops below this share of the configured one
CATCH_UP = 2  # gaps a late loop may make up (the window still caps every second)
QUANTUM = 0.02  # seconds of sends that may start together (at 1,000/s: 20)
REPLY_POLL = 0.05  # seconds: how often a waiting reply looks again when nothing wakes it


class Rate:
    """The limit of one kind of scope: configured, in force (learned), and its ceiling."""

    def __init__(self, limit: float, span: float) -> None:
        self.told = self.limit = self.ceiling = limit
        self.span = span
        self.calm_since = 0.0  # the last 429 or step
        self.refusals = 0

    @classmethod
    def per(cls, rate: float, unit: float) -> Rate:
        """Return `rate` sends per `unit` seconds as a whole number of sends per window."""
        limit = max(1, math.floor(rate + 1e-9))
        return cls(float(limit), limit / (rate / unit))

    @classmethod
    def per_second(cls, rate: float) -> Rate:
        """Return a rate in sends per second (under one: counted per minute, as for groups)."""
        return cls.per(rate, 1.0) if rate >= 1.0 else cls.per(rate * 60.0, 60.0)

    @property
    def cap(self) -> int:
        """Return how many sends may occupy the window now."""
        return max(1, math.floor(self.limit + 1e-9))

    @property
    def gap(self) -> float:
        """Return the even spacing between two sends."""
        return self.span / self.limit

    def refused(self, counted: int, now: float) -> None:
        """Learn from a 429: the platform's limit is at most what the window held."""
        seen = max(1.0, float(counted))
        self.ceiling = max(1.0, min(self.ceiling, seen))
        self.limit = max(self.told * FLOOR_SHARE, min(self.limit, seen) * BACKOFF)
        self.calm_since = now
        self.refusals += 1

    def climb(self, now: float) -> None:
        """Step back up towards the ceiling (and, after a long calm, towards the configured)."""
        if self.limit >= self.told:
            return
        step_every = CLIMB_SPANS * self.span
        steps = math.floor((now - self.calm_since) / step_every)
        if steps <= 0:
            return
        step = max(1.0, self.told * CLIMB_SHARE)
        if self.limit >= self.ceiling and now - self.calm_since >= CALM_SPANS * self.span:
            self.ceiling = min(self.told, self.ceiling + step)
        self.limit = min(self.ceiling, self.told, self.limit + steps * step)
        self.calm_since += steps * step_every


class Window:
    """One scope's sends: those under way and those answered within the last window."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.flying = 0
        self.answered: deque[float] = deque()
        self.next_at = -math.inf  # the even spacing: when the next send is due
        self.paused_until = 0.0

    def counted(self, now: float) -> int:
        """Forget answers older than the window; count what still occupies it."""
        horizon = now - self.rate.span - SAFETY
        while self.answered and self.answered[0] <= horizon:
            self.answered.popleft()
        return self.flying + len(self.answered)

    def wait(self, now: float) -> float | None:
        """Return 0 when a send may start now, the seconds until one may, or None (an answer)."""
        self.rate.climb(now)
        rate = self.rate
        burst = max(1, math.floor(rate.limit / rate.span * QUANTUM + 1e-9))
        tolerance = (burst - 1) * rate.gap + 1e-9
        wait = max(0.0, self.paused_until - now, self.next_at - tolerance - now)
        excess = self.counted(now) - rate.cap  # slots that must free first, less one
        if excess >= 0:
            if excess >= len(self.answered):
                return None
            wait = max(wait, self.answered[excess] + rate.span + SAFETY - now)
        return wait

    def take(self, at: float) -> None:
        """Book a send that starts at `at` (now, or a little later when booked ahead)."""
        self.flying += 1
        gap = self.rate.gap
        self.next_at = max(self.next_at, at - CATCH_UP * gap) + gap

    def cancel(self) -> None:
        """Give back a booked send that did not go out."""
        self.flying = max(0, self.flying - 1)

    def answered_at(self, now: float) -> None:
        """A send came back (sent, or refused for a reason other than the flood limit)."""
        self.flying = max(0, self.flying - 1)
        self.answered.append(now)

    def refused(self, now: float, delay: float) -> None:
        """A send met a 429: it was not counted by the platform; learn and pause."""
        self.flying = max(0, self.flying - 1)
        self.rate.refused(self.counted(now), now)
        self.paused_until = max(self.paused_until, now + delay)
        self.next_at = max(self.next_at, now + delay)

    def crowded(self, now: float) -> bool:
        """Tell whether the window holds more sends than the limit allows (a hint of the scope)."""
        return self.counted(now) > 0

    def idle(self, now: float) -> bool:
        """Tell whether nothing occupies the window (it may be forgotten)."""
        return self.counted(now) == 0 and self.paused_until <= now and self.next_at <= now


@dataclass
class Ticket:
    """One send started: the windows it occupies."""

    overall: Window
    chat: Window
    not_before: float = 0.0  # on the pacer's time line: the send must not start earlier
    refusals: int = 0  # the scopes' 429s when booked: more at send time means think again
    reply: bool = False


class Pacer:
    """The send budget of one channel, shared by interactive replies and the outbox.

    The outbox's dispatcher asks without blocking (`wait`, `take`, `answered`, `refused`);
    the reply path awaits a slot (`acquire`) and reports how the call went (`report`): the
    `Budget` of bot/channels/replies.py.
    """

    def __init__(
        self,
        limits: Limits,
        clock: Clock | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.limits = limits
        self._clock, self._epoch = clock, clock.now() if clock is not None else None
        self._monotonic = now
        self.overall = Window(Rate.per_second(limits.overall))
        self.paid = Window(Rate.per_second(limits.paid)) if limits.paid else None
        self.private = Rate.per_second(limits.per_chat)
        self.group = Rate.per_second(limits.per_group)
        self.chats: dict[str, Window] = {}
        self.replies_waiting = 0
        self.listeners: list[Callable[[], None]] = []
        self._freed = asyncio.Event()
        self._booked: defaultdict[str, deque[Ticket]] = defaultdict(deque)

    def now(self) -> float:
        """Return the pacer's time line in seconds."""
        if self._monotonic is not None:
            return self._monotonic()
        if self._clock is None or self._epoch is None:
            return time.monotonic()
        return (self._clock.now() - self._epoch).total_seconds()

    def at(self, when: datetime) -> float:
        """Return a clock time on the pacer's time line (needs a clock)."""
        assert self._epoch is not None
        return (when - self._epoch).total_seconds()

    # scopes ------------------------------------------------------------------

    def scope(self, paid: bool) -> Window:
        """Return the overall window a send draws from (paid broadcasts have their own)."""
        return self.paid if paid and self.paid is not None else self.overall

    def chat(self, chat_id: str, is_group: bool) -> Window:
        """Return (creating it) one chat's window."""
        window = self.chats.get(chat_id)
        if window is None:
            window = self.chats[chat_id] = Window(self.group if is_group else self.private)
        return window

    def forget_idle(self, now: float, keep: set[str] | None = None) -> None:
        """Drop the windows of chats with nothing in them."""
        keep = keep or set()
        for chat_id in [c for c, w in self.chats.items() if c not in keep and w.idle(now)]:
            del self.chats[chat_id]

    # bulk sends (the dispatcher's loop: never blocks) -------------------------

    def wait(self, chat_id: str, is_group: bool, paid: bool, now: float) -> float | None:
        """Return 0 when a bulk send may start now, else the seconds to wait (None: an event)."""
        if self.replies_waiting:
            return None
        return self._wait(self.scope(paid), self.chat(chat_id, is_group), now)

    def chat_wait(self, chat_id: str, is_group: bool, now: float) -> float | None:
        """Return the wait of one chat's own window."""
        return self.chat(chat_id, is_group).wait(now)

    def scope_wait(self, paid: bool, now: float) -> float | None:
        """Return the wait of the overall (or paid) window, replies first."""
        if self.replies_waiting:
            return None
        return self.scope(paid).wait(now)

    @staticmethod
    def _wait(overall: Window, chat: Window, now: float) -> float | None:
        """Return the longer of two windows' waits (None if either waits for an answer)."""
        waits = [overall.wait(now), chat.wait(now)]
        if any(w is None for w in waits):
            return None
        return max(w for w in waits if w is not None)

    def take(
        self, chat_id: str, is_group: bool, paid: bool, now: float, lead: float = 0.0
    ) -> Ticket:
        """Book a send in its scope and chat, to start now or `lead` seconds from now."""
        overall, chat = self.scope(paid), self.chat(chat_id, is_group)
        at = now + lead
        ticket = Ticket(overall, chat, at, overall.rate.refusals + chat.rate.refusals)
        overall.take(at)
        chat.take(at)
        return ticket

    def stale(self, ticket: Ticket) -> bool:
        """Tell whether a 429 came in its scopes since the send was booked."""
        return ticket.overall.rate.refusals + ticket.chat.rate.refusals != ticket.refusals

    def cancel(self, ticket: Ticket) -> None:
        """Give back a booked send that did not go out."""
        ticket.overall.cancel()
        ticket.chat.cancel()
        self._notify()

    def answered(self, ticket: Ticket, now: float) -> None:
        """A send came back without a 429."""
        ticket.overall.answered_at(now)
        ticket.chat.answered_at(now)
        self._notify()

    def refused(self, ticket: Ticket, delay: float, now: float, scope: str = "chat") -> str:
        """A send met a 429: learn in the scope that refused it; return "chat" or "bot".

        Telegram's 429 does not say which limit it was: unless the channel says "bot", it was
        the chat's when the chat had another send in its window, else the bot's.
        """
        chat_busy = ticket.chat.counted(now) > 1
        if scope != "bot" and chat_busy:
            ticket.chat.refused(now, delay)
            ticket.overall.answered_at(now)
            self._notify()
            return "chat"
        ticket.overall.refused(now, delay)
        ticket.chat.answered_at(now)
        self._notify()
        return "bot"

    def _notify(self) -> None:
        """Wake whoever waits for a free slot."""
        self._freed.set()
        for listener in self.listeners:
            listener()

    # interactive replies (await a slot, ahead of bulk sends) -----------------

    async def reply_slot(self, chat_id: str, is_group: bool = False) -> Ticket:
        """Wait for a slot for a person's reply and take it.

        While the reply waits for the overall budget, bulk sends hold back; while it waits for
        its own chat's window only (a notice just went to the same person), they go on.
        """
        chat = self.chat(chat_id, is_group)
        holding = False
        try:
            while True:
                now = self.now()
                wait = chat.wait(now)
                if wait == 0:
                    wait = self.overall.wait(now)
                    if wait == 0:
                        ticket = self.take(chat_id, is_group, False, now)
                        ticket.reply = True
                        return ticket
                    if not holding:
                        holding = True
                        self.replies_waiting += 1
                self._freed.clear()
                timeout = REPLY_POLL if wait is None else min(wait, REPLY_POLL * 10)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), timeout)
        finally:
            if holding:
                self.replies_waiting -= 1
                self._notify()

    async def acquire(self, chat_id: str) -> None:
        """Wait for a reply's slot (the reply path's Budget); `report` gives it back."""
        is_group = chat_id.startswith("-")  # Telegram's groups have negative ids
        self._booked[chat_id].append(await self.reply_slot(chat_id, is_group))

    def report(self, chat_id: str, outcome: Outcome) -> None:
        """Settle a reply's slot: a flood teaches the pacer, anything else frees the slot."""
        booked = self._booked.get(chat_id)
        if not booked:
            return
        ticket = booked.popleft()
        if not booked:
            del self._booked[chat_id]
        now = self.now()
        if outcome.kind == "flood":
            self.refused(ticket, outcome.delay, now, outcome.scope)
        elif not outcome.attempted:
            self.cancel(ticket)
        else:
            self.answered(ticket, now)
