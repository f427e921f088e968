"""The reply path: what a person gets back for an update, through the channel contract.

A reply that meets a rate limit or a passing fault is tried again (a few times, honouring the
delay the platform asked for), since a reply lost is a person ignored; a long reply sent in parts
resumes after the parts already out. `Budget` is the one place where a shared per-channel rate
budget plugs in; by default replies go at once. Answering a button press is no chat message and
counts against no message limit (Telegram's Bot API answers callback queries without limits), so
it draws on no budget and goes alongside the replies.
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


UNLIMITED = Unlimited()


def _blocked(task: asyncio.Task[Outcome]) -> bool:
    """Tell whether a finished button answer found that the person blocked the bot."""
    if task.cancelled() or task.exception() is not None:
        return False
    return task.result().kind == "blocked"


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

        The press is answered while the update is handled and its replies sent, outside the
        chat's budget; a failure is logged.
        """
        press_id = event.press_id
        if press_id is None:
            return None
        channel = self.channel
        call = self._call(event.chat_id, lambda: channel.answer(press_id), budget=UNLIMITED)
        task = asyncio.create_task(call)
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
        """Send (or edit) each reply while the button press is answered (or `answering` it).

        The replies go one call to a chat at a time, in order, as the budget books them; the
        answer is awaited last. Returns the last outcome: blocked when the person blocked the bot.
        """
        if answering is None:
            answering = self.answer_soon(event)
        try:
            outcome = await self._replies(event, replies, locale)
        finally:
            if answering is not None:  # done before the chat's next update is handled
                await asyncio.wait([answering])
        if outcome.kind != "blocked" and answering is not None and _blocked(answering):
            return answering.result()
        return outcome

    async def _replies(
        self, event: InboundEvent, replies: list[OutboundMessage], locale: str
    ) -> Outcome:
        """Send (or edit) each reply in order; stop when the person blocked the bot."""
        outcome = Outcome.sent(None)
        for reply in replies:
            outcome = await self._reply(event, reply, locale)
            if outcome.kind == "blocked":
                return outcome
            if not outcome.ok:
                log.warning(
                    "reply %s to chat %s not delivered: %s", reply.key, event.chat_id, outcome.error
                )
        return outcome

    async def send(self, chat_id: str, message: OutboundMessage, locale: str) -> Outcome:
        """Send one message to a chat, retried like any reply.

        A long message goes in parts, each drawing its own slot from the budget: a retry
        resumes after the parts already out (counted in memory, for as long as the reply is
        tried), so none of them reaches the person twice.
        """
        out = 0

        async def next_part(parts: int) -> None:
            nonlocal out
            out = max(out, parts)
            self.budget.report(chat_id, Outcome.sent(None))  # the part that went
            await self.budget.acquire(chat_id)  # the next one's slot; `_call` reports it

        async def call() -> Outcome:
            nonlocal out
            outcome = await self.channel.send(
                chat_id, message, locale, first=out, progress=next_part
            )
            out = max(out, outcome.parts)
            return outcome

        return await self._call(chat_id, call)

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

    async def _call(self, chat_id: str, call: Call, budget: Budget | None = None) -> Outcome:
        """Make a call; after a flood or a passing fault wait and try again, within bounds."""
        budget = budget or self.budget
        deadline = self.monotonic() + self.within
        attempt = 0
        while True:
            await budget.acquire(chat_id)
            outcome = await call()
            budget.report(chat_id, outcome)
            attempt += 1
            if outcome.kind not in ("retry", "flood") or attempt >= self.attempts:
                return outcome
            delay = max(outcome.delay, BACKOFF_SECONDS * 2 ** (attempt - 1))
            if self.monotonic() + delay > deadline:
                return outcome
            log.info("reply to chat %s: %s; again in %.1f s", chat_id, outcome.kind, delay)
            await self.sleep(delay)
