"""The OA side of `reformbot run`: the job runner's token check and the admins' notice."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.config import Settings, ZaloSettings
from bot.db import transaction
from bot.i18n import t
from bot.messages import InboundEvent, codec
from bot.models import Channel, Contact, Outbox, Role
from bot.runtime import Runtime
from bot.services import zalo_oa_status
from bot.services.delivery import zalo_oa_tokens as tokens
from bot.startup import classify
from bot.zalo_oa_app import (
    KEY,
    check_tokens,
    in_order,
    make_channel,
    outbox_channels,
    start,
)
from tests import factories as f
from tests.test_zalo_oa_fake import FIRST_REFRESH, OA_ID, FakeZalo, oa_settings


@pytest.fixture
async def zalo():
    fake = FakeZalo()
    fake.base = await fake.start()
    yield fake
    await fake.stop()


def runtime(maker, clock, zalo, webhook_port: int = 8443, **extra) -> Runtime:
    oa = oa_settings(zalo.base, **extra)
    settings = Settings(telegram={"webhook_port": webhook_port}, zalo=ZaloSettings(oa=oa))
    return Runtime(settings=settings, maker=maker, clock=clock)


async def add_admin(maker, clock) -> Contact:
    async with transaction(maker) as s:
        unit = await f.unit(s, "VP", "Văn phòng Sở")
        admin = await f.person(s, "AD", unit, Role.ADMIN, name="Lê Văn Quản")
        contact = Contact(
            channel=Channel.TELEGRAM, external_id="555", person_id=admin.id, created_at=clock.now()
        )
        s.add(contact)
    return contact


async def notices(maker) -> list[Outbox]:
    async with maker() as s:
        stmt = select(Outbox).where(Outbox.kind == zalo_oa_status.REAUTH_KIND)
        return list((await s.exec(stmt)).all())


async def test_the_token_check_refreshes_ahead_of_expiry(maker, clock, zalo):
    rt = runtime(maker, clock, zalo)
    channel = make_channel(rt.settings, maker, clock)
    await channel.open()
    assert await check_tokens(rt, channel) == 0
    assert zalo.refresh_calls == 1  # no token yet: the first check gets one
    clock.advance(timedelta(hours=12, minutes=59))  # 12 h 1 min left of 25 h: not yet
    await check_tokens(rt, channel)
    assert zalo.refresh_calls == 1
    clock.advance(timedelta(minutes=2))  # 11 h 59 min left: within the 12-hour margin
    await check_tokens(rt, channel)
    await channel.close()
    assert zalo.refresh_calls == 2
    async with maker() as s:
        row = await tokens.read(s, OA_ID)
    assert row is not None
    assert row.version == 2
    assert row.access_expires_at == clock.now() + timedelta(seconds=90000)
    assert await notices(maker) == []


async def test_an_oa_that_must_authorise_again_is_told_to_the_admins_once(maker, clock, zalo):
    admin = await add_admin(maker, clock)
    zalo.refresh_tokens.discard(FIRST_REFRESH)  # Zalo no longer knows the configured token
    rt = runtime(maker, clock, zalo)
    channel = make_channel(rt.settings, maker, clock)
    await channel.open()
    assert await check_tokens(rt, channel) == 1
    assert await check_tokens(rt, channel) == 0  # once, however often the check runs
    clock.advance(timedelta(hours=1))
    assert await check_tokens(rt, channel) == 0
    await channel.close()
    [row] = await notices(maker)
    assert (row.channel, row.chat_id) == (Channel.TELEGRAM, admin.external_id)
    message = codec.loads(row.payload)
    async with maker() as s:
        token = await tokens.read(s, OA_ID)
    assert token is not None
    assert token.needs_reauth
    text = t(message.key, "vi", **message.params)
    assert text == t("zalo_oa.reauth_admin", "vi", oa_id=OA_ID, error=token.last_error)
    assert "-14014" in text


async def test_a_new_refusal_after_a_new_token_is_told_again(maker, clock, zalo):
    await add_admin(maker, clock)
    zalo.refresh_tokens.discard(FIRST_REFRESH)
    rt = runtime(maker, clock, zalo)
    channel = make_channel(rt.settings, maker, clock)
    await channel.open()
    assert await check_tokens(rt, channel) == 1
    await channel.close()
    # the operator puts a new token in the configuration, but it is refused too
    rt = runtime(maker, clock, zalo, refresh_token="refresh-token-from-operator")
    channel = make_channel(rt.settings, maker, clock)
    await channel.open()
    assert await check_tokens(rt, channel) == 1
    await channel.close()
    assert len(await notices(maker)) == 2


def test_no_lane_until_the_oa_side_is_started(maker, clock, zalo):
    assert outbox_channels(runtime(maker, clock, zalo)) == {}


async def test_a_busy_oa_port_is_named_at_start(maker, clock, zalo):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rt = runtime(maker, clock, zalo, webhook_port=port)
        with pytest.raises(OSError, match=r"(?i)in use") as info:
            await start(rt)
    fault = classify(info.value, rt.settings)
    assert fault is not None
    assert fault.message("vi") == t("run.port_busy", "vi", listen="127.0.0.1", port=port)
    assert KEY not in rt.extra


async def test_one_persons_events_are_handled_in_order_others_at_once():
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def handle(event: InboundEvent) -> None:
        order.append(f"start {event.text}")
        if event.text == "a1":
            first_in.set()
            await release.wait()
        order.append(f"end {event.text}")

    handler = in_order(handle)

    def ev(chat: str, text: str) -> InboundEvent:
        return InboundEvent(channel="zalo_oa", external_id=chat, chat_id=chat, text=text)

    first = asyncio.create_task(handler(ev("A", "a1")))
    await first_in.wait()
    second = asyncio.create_task(handler(ev("A", "a2")))
    await handler(ev("B", "b1"))  # another person is not held up
    assert order == ["start a1", "start b1", "end b1"]
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["end a1", "start a2", "end a2"]
