"""End to end on the sandbox's Zalo Bot API: a citizen rates with typed answers and a member of
staff acknowledges a directive by typing, in polling and in webhook mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from bot.channels.replies import Replies
from bot.channels.zalo import ZaloApi, ZaloChannel, limits_of
from bot.clock import SystemClock
from bot.config import DeliverySettings, Settings, ZaloSettings
from bot.i18n import t
from bot.models import (
    Channel,
    Contact,
    Directive,
    DirectiveRecipient,
    Rating,
    Role,
    ServiceCounter,
    UnitKind,
)
from bot.sandbox.limits import Limits
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN
from bot.services.delivery import outbox
from bot.services.directives import directives
from bot.services.ratings.service_points import payload_for_counter
from bot.webhook_server import WebhookServer
from bot.zalo_app import Inbound, Poller, Webhook, outbox_channels, recorder
from handlers.context import Deps
from jobs.dispatcher import Dispatcher
from tests import factories as f
from tests.sandbox.zalo_support import ZaloEnv, zalo_env

CITIZEN, STAFF = "7100000000000000201", "7100000000000000202"
SECRET = "sandbox-zalo-secret"


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    async with zalo_env(limits=Limits.off()) as started:
        started.zalo.create_user("Nguyễn Văn Dân", user_id=CITIZEN)
        started.zalo.create_user("Trần Thị An", user_id=STAFF)
        yield started


def settings_for(env: ZaloEnv, mode: str = "polling", port: int = 8444) -> Settings:
    extra: dict[str, Any] = {}
    if mode == "webhook":
        extra = {
            "webhook_url": f"http://127.0.0.1:{port}/zalo",
            "webhook_secret": SecretStr(SECRET),
        }
    return Settings(
        telegram={"webhook_port": port},
        zalo=ZaloSettings(
            enabled=True,
            bot_token=SecretStr(DEFAULT_ZALO_TOKEN),
            api_base=env.server.origin + "/zalo",
            mode=mode,
            **extra,
        ),
    )


class Person:
    """A person typing in the sandbox's Zalo app, the bot answering by polling."""

    def __init__(self, env: ZaloEnv, maker, clock, settings: Settings) -> None:
        self.env = env
        self.api = ZaloApi(DEFAULT_ZALO_TOKEN, settings.zalo.api_base)
        channel = ZaloChannel(
            self.api,
            settings.scheduler.tz,
            limits_of(settings.zalo),
            on_choices=recorder(maker, clock),
        )
        self.inbound = Inbound(Deps(maker, settings, clock), Replies(channel))
        self.poller = Poller(self.api, self.inbound, None, timeout=0)

    async def say(self, chat_id: str, text: str) -> list[str]:
        """Type a text; let the bot poll and answer; return the bot's new texts in the chat."""
        before = len(self.env.zalo.messages(chat_id))
        self.env.zalo.send_text(chat_id, text)
        await self.poller.poll_once()
        await self.inbound.drain()
        new = self.env.zalo.messages(chat_id)[before:]
        return [m["text"] for m in new if m["sender"] == "bot" and "text" in m]


@pytest.fixture
async def person(env, maker, clock) -> AsyncIterator[Person]:
    talker = Person(env, maker, clock, settings_for(env))
    yield talker
    await talker.api.close()


async def seed_counter(maker, clock) -> None:
    async with maker() as s:
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        now = clock.now()
        s.add(
            ServiceCounter(
                code="Q1", name="Quầy 1", unit_id=desk.id, created_at=now, updated_at=now
            )
        )
        await s.commit()


async def test_a_citizen_rates_with_typed_answers_by_polling(env, person, maker, clock):
    await seed_counter(maker, clock)
    greet = await person.say(CITIZEN, payload_for_counter("Q1"))
    assert "Bộ phận Một cửa" in greet[0]
    assert "1. " in greet[-1]
    for answer in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua", "Trần Văn Bộ", "bỏ qua"):
        replies = await person.say(CITIZEN, answer)
        assert replies, answer
        assert all("<b>" not in r and len(r) <= 2000 for r in replies)
    thanks = await person.say(CITIZEN, "ẩn danh")
    assert thanks[0] == t("rating.thanks", "vi")
    async with maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)


async def seed_directive(maker, clock) -> tuple[Directive, DirectiveRecipient, Contact]:
    async with maker() as s:
        unit = await f.unit(s, "PGD1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE)
        staff = await f.person(s, "ST", unit, Role.STAFF, name="An")
        contact = Contact(
            channel=Channel.ZALO, external_id=STAFF, person_id=staff.id, created_at=clock.now()
        )
        d = Directive(
            number="15/CT-UBND",
            issued_on=date(2026, 11, 30),
            title="Triển khai khảo sát SIPAS",
            summary="Đề nghị phổ biến tới cán bộ.",
            audience="everyone",
            target="all",
            ack_deadline=clock.now() + timedelta(days=2),
            created_by="test",
            created_at=clock.now(),
        )
        s.add_all([contact, d])
        await s.flush()
        assert d.id is not None
        assert staff.id is not None
        row = DirectiveRecipient(directive_id=d.id, person_id=staff.id, unit_id=unit.id)
        s.add(row)
        await s.commit()
    return d, row, contact


async def push_notice(env, maker, d, row, contact) -> str:
    """Send the notice through the dispatcher's Zalo lane; return what the person sees."""
    clock = SystemClock()
    async with maker() as s:
        contact = await s.get(Contact, contact.id)
        message = directives.notice(d, recipient_id=row.id, units="UBND xã Đông Sơn")
        await outbox.enqueue(s, contact=contact, message=message, kind="directive", now=clock.now())
        await s.commit()
    channels = outbox_channels(settings_for(env), maker, clock)
    dispatcher = Dispatcher(
        maker=maker, channels=channels, settings=DeliverySettings(), clock=clock, owner="e2e"
    )
    await dispatcher.drain()
    await channels["zalo"].close()
    [notice] = [m["text"] for m in env.zalo.messages(STAFF) if m["sender"] == "bot"]
    return str(notice)


async def test_a_member_of_staff_acknowledges_a_directive_by_typing(env, person, maker, clock):
    d, row, contact = await seed_directive(maker, clock)
    notice = await push_notice(env, maker, d, row, contact)
    assert "15/CT-UBND" in notice
    assert notice.endswith(f"1. {t('directive.ack_button', 'vi')}")
    [reply] = await person.say(STAFF, "đã nhận")
    assert "15/CT-UBND" in reply
    async with maker() as s:
        acked = await s.get(DirectiveRecipient, row.id)
    assert acked is not None
    assert acked.acked_at is not None
    assert acked.ack_channel == "zalo"


async def test_webhook_mode_through_the_sandbox(env, maker, clock, unused_tcp_port):
    settings = settings_for(env, "webhook", unused_tcp_port)
    talker = Person(env, maker, clock, settings)
    hook = Webhook(settings, talker.inbound, maker, clock)
    server = WebhookServer("127.0.0.1", unused_tcp_port)
    hook.add_route(server)
    await server.start()
    try:
        assert (await talker.api.set_webhook(settings.zalo.webhook_url or "", SECRET)).ok
        env.zalo.send_text(CITIZEN, "/lang")
        await env.zalo.wait_for_messages(CITIZEN, 1)  # the bot's messages
        await talker.inbound.drain()
        [question] = [m["text"] for m in env.zalo.messages(CITIZEN) if m["sender"] == "bot"]
        assert f"2. {t('lang.en', 'vi')}" in question
        env.zalo.send_text(CITIZEN, "2")
        await env.zalo.wait_for_messages(CITIZEN, 2)
        await talker.inbound.drain()
        assert env.zalo.messages(CITIZEN)[-1]["text"] == t("lang.changed", "en")
    finally:
        await server.stop()
        await hook.stop()
        await talker.api.close()


async def test_a_sticker_mid_rating_is_answered_and_loses_no_step(env, person, maker, clock):
    """Real Zalo sends stickers and images as their own events; the bot asks for text."""
    await seed_counter(maker, clock)
    await person.say(CITIZEN, payload_for_counter("Q1"))
    step = await person.say(CITIZEN, "bỏ qua")
    for kind, body in (("sticker", {"sticker": "stk"}), ("image", {"photo": "https://i/x.jpg"})):
        before = len(env.zalo.messages(CITIZEN))
        await env.user("POST", f"/chats/{CITIZEN}/others", {"kind": kind, **body})
        await person.poller.poll_once()
        await person.inbound.drain()
        new = [m["text"] for m in env.zalo.messages(CITIZEN)[before:] if m["sender"] == "bot"]
        assert new == [t("zalo.text_only", "vi")]
    # the overall level is still the question: "2" answers it
    assert "2. " in step[-1]
    for answer in ("2", "5", "4", "bo qua", "1", "bỏ qua", "bỏ qua", "bỏ qua", "ẩn danh"):
        await person.say(CITIZEN, answer)
    async with maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert rating.overall == 2
