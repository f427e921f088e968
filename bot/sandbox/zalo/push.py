"""Pushes Zalo events to webhooks in order, retrying with backoff: the bot's updates (header
X-Bot-Api-Secret-Token) and the Official Account's events (header X-ZEvent-Signature)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable

import aiohttp

from bot.sandbox.errors import JsonDict
from bot.sandbox.webhook import RetryPolicy
from bot.sandbox.zalo.engine import ZaloSandbox
from bot.sandbox.zalo.world import Outbox, ZaloCounters

LOGGER = logging.getLogger(__name__)
BOT_SECRET_HEADER = "X-Bot-Api-Secret-Token"
OA_SIGNATURE_HEADER = "X-ZEvent-Signature"
Target = tuple[str, bytes, dict[str, str]]


def oa_signature(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """Return the X-ZEvent-Signature value: "mac=" + sha256(app id + body + timestamp + key)."""
    signed = app_id.encode() + body + timestamp.encode() + oa_secret_key.encode()
    return "mac=" + hashlib.sha256(signed).hexdigest()


def encode(data: JsonDict) -> bytes:
    """Write a JSON body keeping Vietnamese letters."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


class Pusher:
    """Delivers the events of one outbox to a webhook, one at a time, oldest first."""

    def __init__(
        self,
        outbox: Outbox,
        target: Callable[[JsonDict], Target | None],
        counters: Callable[[], ZaloCounters],
        session: aiohttp.ClientSession,
        policy: RetryPolicy,
        on_error: Callable[[str], None] = lambda error: None,
    ) -> None:
        self.outbox, self.target, self.counters = outbox, target, counters
        self.session, self.policy, self.on_error = session, policy, on_error

    async def run(self) -> None:
        """Deliver events until cancelled."""
        failures = 0
        while True:
            event = self.outbox.items[0] if self.outbox.items else None
            target = self.target(event) if event is not None else None
            if event is None or target is None:
                await self.outbox.changed.wait(None)
                continue
            error = await self.deliver(*target)
            self.counters().webhook_posts_total += 1
            if error is None:
                failures = 0
                self.outbox.drop(event)
                continue
            failures += 1
            self.counters().webhook_failures_total += 1
            self.on_error(error)
            await self.outbox.changed.wait(self.policy.delay(failures))

    async def deliver(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """POST one event; return None on a 2xx answer, else the error message."""
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        headers = {"Content-Type": "application/json", **headers}
        try:
            async with self.session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None
                return f"Wrong response from the webhook: {resp.status}"
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientError as exc:
            LOGGER.debug("Zalo webhook delivery failed: %r", exc)
            return f"Connection failed: {exc.__class__.__name__}"


def bot_target(zalo: ZaloSandbox) -> Callable[[JsonDict], Target | None]:
    """Return where and how the bot's next update goes (None while no webhook is set)."""

    def target(update: JsonDict) -> Target | None:
        hook = zalo.bot.webhook
        if hook is None:
            return None
        data = {"ok": True, "result": update} if zalo.wrap_webhook else update
        return hook.url, encode(data), {BOT_SECRET_HEADER: hook.secret_token}

    return target


def oa_target(zalo: ZaloSandbox) -> Callable[[JsonDict], Target | None]:
    """Return where and how the OA's next event goes, signed (None while no webhook URL)."""

    def target(event: JsonDict) -> Target | None:
        url = zalo.oa.webhook_url
        if not url:
            return None
        settings = zalo.oa.settings
        body = encode(event)
        mac = oa_signature(settings.app_id, body, event["timestamp"], settings.oa_secret_key)
        return url, body, {OA_SIGNATURE_HEADER: mac}

    return target


async def run_pushers(
    zalo: ZaloSandbox, session: aiohttp.ClientSession, policy: RetryPolicy
) -> list[asyncio.Task[None]]:
    """Start the bot's and the OA's pushers."""

    def bot_error(error: str) -> None:
        if zalo.bot.webhook is not None:
            zalo.bot.webhook.last_error = error

    def oa_error(error: str) -> None:
        zalo.oa.last_webhook_error = error

    bot = Pusher(
        zalo.bot.updates, bot_target(zalo), lambda: zalo.bot.counters, session, policy, bot_error
    )
    oa = Pusher(
        zalo.oa.events, oa_target(zalo), lambda: zalo.oa.counters, session, policy, oa_error
    )
    return [
        asyncio.create_task(bot.run(), name="zalo-bot-webhook"),
        asyncio.create_task(oa.run(), name="zalo-oa-webhook"),
    ]
