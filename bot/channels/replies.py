"""The reply path: what a person gets back for an update, through the channel contract.

A reply that meets a rate limit or a passing fault is tried again (a few times, honouring the
delay the platform asked for), since a reply lost is a person ignored. `Budget` is the one place
where a shared per-channel rate budget plugs in; by default replies go at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.channels.contract import Channel, Outcome
from bot.messages import InboundEvent, OutboundMessage

log = logging.getLogger(__name__)
ATTEMPTS = 3
WITHIN_SECONDS = 30.0
BACKOFF_SECONDS = 0.5
Sleep = Callable[[float], Awaitable[None]]
Call = Callable[[], Awaitable[Outcome]]


class Budget(Protocol):
    """A channel's rate budget as replies draw on it."""

    async def acquire(self, chat_id: str) -> None:
        """Wait until one more call to the chat is allowed."""
        ...

    def report(self, chat_id: str, outcome: Outcome) -> None:
        """Tell the budget how a call went (a flood should slow it down)."""
        ...


class Unlimited:
    """No budget: every reply goes at once."""

    async def acquire(self, chat_id: str) -> None:
        """Allow at once."""

    def report(self, chat_id: str, outcome: Outcome) -> None:
        """Ignore."""


def _log_failure(task: asyncio.Task[Outcome]) -> None:
    """Log a button answer that raised (it is awaited, if at all, only later)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("button answer failed", exc_info=task.exception())


class Replies:
    """Send the replies to an event through one channel, retrying floods and passing faults."""

    def __init__(
        self,
        channel: Channel,
        *,
        budget: Budget | None = None,
        attempts: int = ATTEMPTS,
        within: float = WITHIN_SECONDS,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel, self.budget = channel, budget or Unlimited()
        self.attempts, self.within = attempts, within
        self.sleep, self.monotonic = sleep, monotonic

    def answer_soon(self, event: InboundEvent) -> asyncio.Task[Outcome] | None:
        """Start answering the event's button press (None when it is no press); give it to deliver.

        The press is answered while the update is handled, not before; a failure is logged.
        """
        press_id = event.press_id
        if press_id is None:
            return None
        channel = self.channel
        task = asyncio.create_task(self._call(event.chat_id, lambda: channel.answer(press_id)))
        task.add_done_callback(_log_failure)
        return task

    async def deliver(
        self,
        event: InboundEvent,
        replies: list[OutboundMessage],
        locale: str,
        *,
        answering: asyncio.Task[Outcome] | None = None,
    ) -> Outcome:
        """Answer the button press (or finish `answering` it), then send (or edit) each reply.

        One call to a chat at a time, in order, as the budget books them. Returns the last
        outcome: blocked when the person blocked the bot.
        """
        chat = event.chat_id
        if answering is None:
            answering = self.answer_soon(event)
        if answering is not None:
            answered = await answering
            if answered.kind == "blocked":
                return answered
        outcome = Outcome.sent(None)
        for reply in replies:
            outcome = await self._reply(event, reply, locale)
            if outcome.kind == "blocked":
                return outcome
            if not outcome.ok:
                log.warning("reply %s to chat %s not delivered: %s", reply.key, chat, outcome.error)
        return outcome

    async def send(self, chat_id: str, message: OutboundMessage, locale: str) -> Outcome:
        """Send one message to a chat, retried like any reply."""
        return await self._call(chat_id, lambda: self.channel.send(chat_id, message, locale))

    async def _reply(self, event: InboundEvent, reply: OutboundMessage, locale: str) -> Outcome:
        """Edit the pressed message where asked (sending anew if it cannot be), else send."""
        chat, message_id = event.chat_id, event.message_id
        if reply.edit and event.action is not None and message_id is not None:
            caption = event.pressed_has_caption
            outcome = await self._call(
                chat,
                lambda: self.channel.edit(chat, message_id, reply, locale, caption=caption),
            )
            if outcome.kind != "failed":
                return outcome
            log.info("edit in chat %s failed (%s): sending anew", chat, outcome.error)
        return await self.send(chat, reply, locale)

    async def _call(self, chat_id: str, call: Call) -> Outcome:
        """Make a call; after a flood or a passing fault wait and try again, within bounds."""
        deadline = self.monotonic() + self.within
        attempt = 0
        while True:
            await self.budget.acquire(chat_id)
            outcome = await call()
            self.budget.report(chat_id, outcome)
            attempt += 1
            if outcome.kind not in ("retry", "flood") or attempt >= self.attempts:
                return outcome
            delay = max(outcome.delay, BACKOFF_SECONDS * 2 ** (attempt - 1))
            if self.monotonic() + delay > deadline:
                return outcome
            log.info("reply to chat %s: %s; again in %.1f s", chat_id, outcome.kind, delay)
            await self.sleep(delay)
