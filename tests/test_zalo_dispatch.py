"""The outbox through the Zalo lane: text split at 2000, the list remembered, outcomes kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlmodel import select

from bot.clock import SystemClock
from bot.config import DeliverySettings, Settings, ZaloSettings
from bot.i18n import t
from bot.messages import Button, Html, OutboundMessage
from bot.models import Contact, Outbox, OutboxStatus, ShownChoices
from bot.services.delivery import outbox
from bot.zalo_app import outbox_channels
from jobs.dispatcher import Dispatcher
from tests.zalo_fake import TOKEN, FakeZaloApi

ACK = OutboundMessage(
    "broadcast.message",
    {"text": Html("<b>Công văn 15</b>")},
    buttons=((Button("directive.ack_button", "ack:1"),),),
)


@pytest.fixture
async def api() -> AsyncIterator[FakeZaloApi]:
    server = FakeZaloApi()
    await server.start()
    yield server
    await server.close()


async def test_queued_messages_go_out_on_the_zalo_lane(api, maker):
    clock = SystemClock()
    settings = Settings(
        zalo=ZaloSettings(
            enabled=True, bot_token=SecretStr(TOKEN), api_base=api.base, rate=100, chat_rate=30
        )
    )
    long = "\n".join(f"Dòng {i:03d} " + "x" * 40 for i in range(60))  # 3,000 characters
    async with maker() as s:
        people = [
            Contact(channel="zalo", external_id=uid, locale="vi", created_at=clock.now())
            for uid in ("701", "702", "703")
        ]
        s.add_all(people)
        await s.flush()
        await outbox.enqueue(s, contact=people[0], message=ACK, kind="test", now=clock.now())
        await outbox.enqueue(
            s,
            contact=people[1],
            message=OutboundMessage("broadcast.message", {"text": Html(long)}),
            kind="test",
            now=clock.now(),
        )
        await outbox.enqueue(s, contact=people[2], message=ACK, kind="test", now=clock.now())
        await s.commit()
    blocked_answer = {"ok": False, "error_code": 403, "description": "blocked"}
    api.script("sendMessage", 200, blocked_answer, chat_id="703")
    channels = outbox_channels(settings, maker, clock)
    dispatcher = Dispatcher(
        maker=maker,
        channels=channels,
        settings=DeliverySettings(),
        clock=clock,
        owner="test",
    )
    await asyncio.wait_for(dispatcher.drain(), 30)
    await channels["zalo"].close()
    async with maker() as s:
        rows = {r.chat_id: r for r in (await s.exec(select(Outbox))).all()}
        shown = (await s.exec(select(ShownChoices))).all()
        blocked = {c.external_id for c in (await s.exec(select(Contact))).all() if c.blocked_at}
    sent = {chat for chat, r in rows.items() if r.status == OutboxStatus.SENT}
    assert sent == {"701", "702"}
    assert blocked == {"703"}
    parts = api.texts("702")
    assert [len(p) <= 2000 for p in parts] == [True, True]
    assert "\n".join(parts) == t("broadcast.message", "vi", text=long)
    assert rows["702"].platform_message_id is not None
    [notice] = api.texts("701")
    assert notice.startswith("📢 Công văn 15\n\n" + t("typed.options_intro", "vi"))
    assert notice.endswith(f"1. {t('directive.ack_button', 'vi')}")
    assert [(r.channel, r.chat_id) for r in shown] == [("zalo", "701")]
