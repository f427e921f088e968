"""Webhook mode: updates are POSTed in order with the secret header and retried on failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import telegram
from aiohttp import web

from bot.sandbox import SandboxServer, User


@dataclass
class Receiver:
    """A bot-side webhook endpoint that fails on demand."""

    url: str = ""
    fail_next: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str | None] = field(default_factory=list)
    attempts: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request; answer 500 while failures are queued."""
        self.attempts += 1
        self.secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="boom")
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(text="ok")

    async def wait_for(self, count: int) -> None:
        """Wait until `count` updates were accepted."""
        async with asyncio.timeout(3):
            while len(self.bodies) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """Run a webhook receiver on a free port."""
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield hook
    await runner.cleanup()


async def test_updates_are_pushed_with_secret_header(
    server: SandboxServer, tg: telegram.Bot, lan: User, receiver: Receiver
) -> None:
    """Each update arrives once, in order, with X-Telegram-Bot-Api-Secret-Token."""
    assert await tg.set_webhook(receiver.url, secret_token="s3cret-Token_1")
    first = server.send_text(lan.id, "một")
    second = server.send_text(lan.id, "hai")
    await receiver.wait_for(2)
    assert [body["update_id"] for body in receiver.bodies] == [first, second]
    assert [body["message"]["text"] for body in receiver.bodies] == ["một", "hai"]
    assert receiver.secrets == ["s3cret-Token_1", "s3cret-Token_1"]
    info = await tg.get_webhook_info()
    assert info.url == receiver.url
    assert info.pending_update_count == 0


async def test_failed_delivery_is_retried_in_order(
    server: SandboxServer, tg: telegram.Bot, lan: User, receiver: Receiver
) -> None:
    """After two 500 answers the first update is delivered again before the second."""
    receiver.fail_next = 2
    await tg.set_webhook(receiver.url)
    first = server.send_text(lan.id, "thử lại")
    second = server.send_text(lan.id, "sau")
    await receiver.wait_for(2)
    assert receiver.attempts == 4
    assert [body["update_id"] for body in receiver.bodies] == [first, second]
    assert receiver.secrets[0] is None
    info = await tg.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
    assert info.last_error_date is not None


async def test_pending_count_while_receiver_is_down(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """With an unreachable webhook, updates stay pending and the error is reported."""
    await tg.set_webhook("http://127.0.0.1:9/unreachable")
    server.send_text(lan.id, "đang chờ")
    server.send_text(lan.id, "vẫn chờ")
    for _ in range(300):
        info = await tg.get_webhook_info()
        if info.last_error_message is not None:
            break
        await asyncio.sleep(0.01)
    assert info.pending_update_count == 2
    assert (info.last_error_message or "").startswith("Connection failed")
    assert await tg.delete_webhook(drop_pending_updates=True)
    assert (await tg.get_webhook_info()).pending_update_count == 0


async def test_bad_secret_token_is_refused(tg: telegram.Bot, receiver: Receiver) -> None:
    """A secret token with characters outside A-Z a-z 0-9 _ - is refused."""
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)secret token contains unallowed"):
        await tg.set_webhook(receiver.url, secret_token="không hợp lệ")
    assert (await tg.get_webhook_info()).url == ""
