"""The Zalo OA webhook: forgeries refused, replays handled once, events routed like Telegram's."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiohttp import test_utils, web
from sqlmodel import select

from bot.channels.replies import Replies
from bot.channels.zalo_oa import ZaloOAChannel
from bot.config import Settings
from bot.db import transaction
from bot.i18n import t
from bot.messages import InboundEvent, OutboundMessage
from bot.models import Contact
from bot.services.delivery import outbox
from bot.zalo_oa_webhook import SIGNATURE_HEADER, add_route, router_dispatch, signature
from handlers.context import Deps
from tests.test_zalo_oa_fake import APP_ID, OA_ID, OA_SECRET, FakeZalo, oa_settings

USER = "7001002003"


def event_body(clock, name="user_send_text", *, age=timedelta(0), text="xin chào", msg_id="m1"):
    stamp = str(int((clock.now() - age).timestamp() * 1000))
    data: dict = {"app_id": APP_ID, "event_name": name, "timestamp": stamp}
    if name in ("follow", "unfollow"):
        data |= {"oa_id": OA_ID, "follower": {"id": USER}}
    else:
        data |= {"sender": {"id": USER}, "recipient": {"id": OA_ID}}
        data["message"] = {"msg_id": msg_id, "text": text}
    return json.dumps(data, ensure_ascii=False).encode(), stamp


def signed(body: bytes, stamp: str, secret: str = OA_SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: "mac=" + signature(APP_ID, body, stamp, secret)}


@pytest.fixture
async def hooked(maker, clock):
    events: list[InboundEvent] = []

    async def collect(event: InboundEvent) -> None:
        events.append(event)

    app = web.Application()
    hook = add_route(app, oa_settings("http://unused"), maker, clock, collect)
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    yield client, hook, events
    await client.close()


@pytest.mark.parametrize(
    ("case", "status"),
    [("no signature", 401), ("bad mac", 403), ("old", 408), ("future", 408), ("other secret", 403)],
)
async def test_forged_posts_are_refused(hooked, clock, case, status):
    client, hook, events = hooked
    age = {"old": timedelta(hours=2, seconds=1), "future": -timedelta(minutes=6)}
    body, stamp = event_body(clock, age=age.get(case, timedelta(0)))
    headers = {
        "no signature": {},
        "bad mac": {SIGNATURE_HEADER: "mac=" + "0" * 64},
        "other secret": signed(body, stamp, "another-oa-secret"),
    }.get(case, signed(body, stamp))
    answer = await client.post("/zalo-oa", data=body, headers=headers)
    await hook.idle()
    assert answer.status == status
    assert events == []


async def test_a_signed_text_is_routed_once_even_when_replayed(hooked, clock):
    client, hook, events = hooked
    body, stamp = event_body(clock, text="/start ABC123")
    for _ in range(2):
        answer = await client.post("/zalo-oa", data=body, headers=signed(body, stamp))
        assert answer.status == 200
    await hook.idle()
    assert events == [
        InboundEvent(
            channel="zalo_oa",
            external_id=USER,
            chat_id=USER,
            text="/start ABC123",
            command="start",
            args=("ABC123",),
            message_id="m1",
        )
    ]


async def test_zalos_retry_an_hour_later_is_handled_once(hooked, clock):
    """Zalo retries a failed event for hours with its first timestamp: it is not refused."""
    client, hook, events = hooked
    body, stamp = event_body(clock, text="/start ABC123", age=timedelta(hours=1))
    for _ in range(2):
        answer = await client.post("/zalo-oa", data=body, headers=signed(body, stamp))
        assert answer.status == 200
    await hook.idle()
    assert [e.text for e in events] == ["/start ABC123"]


async def test_the_mac_header_may_come_without_its_prefix(hooked, clock):
    client, hook, events = hooked
    body, stamp = event_body(clock)
    bare = {SIGNATURE_HEADER: signature(APP_ID, body, stamp, OA_SECRET)}
    assert (await client.post("/zalo-oa", data=body, headers=bare)).status == 200
    await hook.idle()
    assert [e.text for e in events] == ["xin chào"]


async def test_follow_welcomes_and_unfollow_blocks(maker, clock):
    zalo = FakeZalo()
    base = await zalo.start()
    settings = oa_settings(base)
    oa = ZaloOAChannel(settings, maker, clock)
    await oa.open()
    deps = Deps(maker, Settings(), clock)
    app = web.Application()
    hook = add_route(app, settings, maker, clock, router_dispatch(deps, Replies(oa)))
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    try:
        body, stamp = event_body(clock, "follow")
        assert (await client.post("/zalo-oa", data=body, headers=signed(body, stamp))).status == 200
        await hook.idle()
        welcome = t("start.welcome_citizen", "vi", agency=Settings().agency.name)
        assert zalo.texts(USER) == [welcome.replace("<b>", "").replace("</b>", "")]
        clock.advance(timedelta(minutes=1))
        body, stamp = event_body(clock, "unfollow")
        assert (await client.post("/zalo-oa", data=body, headers=signed(body, stamp))).status == 200
        await hook.idle()
        async with maker() as session:
            contact = (await session.exec(select(Contact))).one()
        assert contact.channel == "zalo_oa"
        assert contact.blocked_at == clock.now()
        assert contact.last_seen_at == clock.now() - timedelta(minutes=1)
        async with transaction(maker) as session:
            queued = await outbox.enqueue(
                session,
                contact=contact,
                message=OutboundMessage("errors.internal"),
                kind="test",
                now=clock.now(),
            )
        assert queued is None  # nothing more is attempted to someone who unfollowed
    finally:
        await client.close()
        await oa.close()
        await zalo.stop()


async def test_a_failure_while_handling_tells_the_person_without_internals(
    maker, clock, monkeypatch
):
    zalo = FakeZalo()
    settings = oa_settings(await zalo.start())
    async with transaction(maker) as session:
        session.add(
            Contact(
                channel="zalo_oa",
                external_id=USER,
                created_at=clock.now() - timedelta(days=1),
                last_seen_at=clock.now() - timedelta(hours=1),
            )
        )
    oa = ZaloOAChannel(settings, maker, clock)
    await oa.open()

    async def broken(event, deps):
        raise RuntimeError("database exploded")

    monkeypatch.setattr("handlers.router.handle", broken)
    deps = Deps(maker, Settings(), clock)
    app = web.Application()
    hook = add_route(app, settings, maker, clock, router_dispatch(deps, Replies(oa)))
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    try:
        body, stamp = event_body(clock)
        assert (await client.post("/zalo-oa", data=body, headers=signed(body, stamp))).status == 200
        await hook.idle()
        assert zalo.texts(USER) == [t("errors.internal", "vi")]
    finally:
        await client.close()
        await oa.close()
        await zalo.stop()


@pytest.mark.parametrize("name", ["user_send_sticker", "user_send_image", "user_send_file"])
async def test_a_sticker_or_image_to_the_oa_is_told_the_bot_reads_text(maker, clock, name):
    """A first message that is not text opens the window and gets a translated answer."""
    zalo = FakeZalo()
    settings = oa_settings(await zalo.start())
    oa = ZaloOAChannel(settings, maker, clock)
    await oa.open()
    deps = Deps(maker, Settings(), clock)
    app = web.Application()
    hook = add_route(app, settings, maker, clock, router_dispatch(deps, Replies(oa)))
    client = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    try:
        stamp = str(int(clock.now().timestamp() * 1000))
        data = {
            "app_id": APP_ID,
            "event_name": name,
            "timestamp": stamp,
            "sender": {"id": USER},
            "recipient": {"id": OA_ID},
            "message": {"msg_id": "m-att", "attachments": [{"type": "image", "payload": {}}]},
        }
        body = json.dumps(data).encode()
        assert (await client.post("/zalo-oa", data=body, headers=signed(body, stamp))).status == 200
        await hook.idle()
        assert zalo.texts(USER) == [t("zalo.text_only", "vi")]
    finally:
        await client.close()
        await oa.close()
        await zalo.stop()


async def test_decomposed_vietnamese_to_the_oa_is_read_composed(hooked, clock):
    import unicodedata

    client, hook, events = hooked
    body, stamp = event_body(clock, text=unicodedata.normalize("NFD", "đã nhận"))
    assert (await client.post("/zalo-oa", data=body, headers=signed(body, stamp))).status == 200
    await hook.idle()
    assert [e.text for e in events] == ["đã nhận"]
