"""Pushes a bot's updates to its webhook in order, retrying with backoff."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiohttp

from bot.sandbox.engine import Sandbox
from bot.sandbox.state import BotState, Update, WebhookState

LOGGER = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(frozen=True)
class RetryPolicy:
    """How the pusher retries: first delay, doubling up to a maximum, and a request timeout."""

    base: float = 1.0
    maximum: float = 30.0
    timeout: float = 10.0

    def delay(self, failures: int) -> float:
        """Return the wait before the next attempt after `failures` failures in a row."""
        return float(min(self.maximum, self.base * 2 ** max(failures - 1, 0)))


class WebhookPusher:
    """Delivers the updates of one bot to its webhook, one at a time, oldest first."""

    def __init__(
        self, sandbox: Sandbox, token: str, session: aiohttp.ClientSession, policy: RetryPolicy
    ) -> None:
        self.sandbox = sandbox
        self.token = token
        self.session = session
        self.policy = policy

    @property
    def bot(self) -> BotState:
        """Return the bot's current state (it is replaced on reset)."""
        return self.sandbox.bots[self.token]

    async def run(self) -> None:
        """Deliver updates until cancelled."""
        failures = 0
        while True:
            bot = self.bot
            hook, update = bot.webhook, bot.updates.items[0] if bot.updates.items else None
            if hook is None or update is None:
                await self._idle(bot)
                continue
            error = await self.deliver(hook, update)
            if error is None:
                failures = 0
                _drop(bot, update)
                continue
            failures += 1
            hook.last_error_date = self.sandbox.now()
            hook.last_error_message = error
            await bot.webhook_changed.wait(self.policy.delay(failures))

    async def _idle(self, bot: BotState) -> None:
        """Wait for a new update or a webhook change."""
        events = (bot.updates.changed.current(), bot.webhook_changed.current())
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def deliver(self, hook: WebhookState, update: Update) -> str | None:
        """POST one update; return None on a 2xx answer, else the error message."""
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        body = json.dumps(update.to_api(), ensure_ascii=False).encode("utf-8")
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        post = self.session.post(hook.url, data=body, headers=headers, timeout=timeout)
        try:
            async with post as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None
                return f"Wrong response from the webhook: {resp.status} {resp.reason or ''}".strip()
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientError as exc:
            LOGGER.debug("webhook delivery failed: %r", exc)
            return f"Connection failed: {exc.__class__.__name__}"


def _drop(bot: BotState, update: Update) -> None:
    """Remove a delivered update if it is still the first in the queue."""
    items = bot.updates.items
    if items and items[0] is update:
        items.popleft()
