"""Zalo inbound: the webhook's secret, routing like Telegram, numbered lists and typed answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlmodel import select

from bot.channels.replies import Replies
from bot.channels.zalo import ZaloApi, ZaloChannel, limits_of
from bot.config import Settings, ZaloSettings
from bot.i18n import t
from bot.models import (
    Channel,
    Contact,
    Directive,
    DirectiveRecipient,
    Rating,
    Role,
    ServiceCounter,
    ShownChoices,
    UnitKind,
)
from bot.services.directives import directives
from bot.services.ratings.service_points import payload_for_counter
from bot.zalo_app import SECRET_HEADER, Inbound, Webhook, recorder
from handlers.context import Deps
from tests import factories as f
from tests.zalo_fake import TOKEN, FakeZaloApi, update

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SECRET = "zalo-webhook-secret-42"
STAFF, CITIZEN = "6100000000000000001", "6100000000000000002"


def settings() -> Settings:
    """Return settings with Zalo on, in webhook mode."""
    return Settings(
        zalo=ZaloSettings(
            enabled=True,
            bot_token=SecretStr(TOKEN),
            mode="webhook",
            webhook_url="https://bot.example.gov.vn/zalo",
            webhook_secret=SecretStr(SECRET),
        )
    )


class ZaloBot:
    """The Zalo side of a bot, on the fake Bot API: send a text as a person, read the replies."""

    def __init__(self, api: FakeZaloApi, maker, clock) -> None:
        self.api, self.maker, self.clock = api, maker, clock
        self.settings = settings()
        self.channel = ZaloChannel(
            ZaloApi(TOKEN, api.base),
            TZ,
            limits_of(self.settings.zalo),
            on_choices=recorder(maker, clock),
        )
        self.inbound = Inbound(Deps(maker, self.settings, clock), Replies(self.channel))

    async def send(self, uid: str, text: str) -> list[str]:
        """Send a text as a person; return the texts the bot answered with."""
        self.api.clear()
        await self.inbound.handle(update(uid, text))
        return self.api.texts(uid)

    def restarted(self) -> ZaloBot:
        """Return a new process's Zalo side on the same database and API."""
        return ZaloBot(self.api, self.maker, self.clock)


@pytest.fixture
async def zalo(maker, clock) -> AsyncIterator[ZaloBot]:
    api = FakeZaloApi()
    await api.start()
    bot = ZaloBot(api, maker, clock)
    yield bot
    await bot.channel.close()
    await api.close()


def numbered(text: str) -> dict[str, str]:
    """Return the numbered lines of a text: number -> label."""
    return dict(re.findall(r"^(\d+)\. (.+)$", text, flags=re.M))


async def locale_of(maker, uid: str) -> str:
    async with maker() as s:
        contact = (await s.exec(select(Contact).where(Contact.external_id == uid))).one()
    return contact.locale


async def test_lang_buttons_are_a_numbered_list_and_a_typed_number_presses_them(zalo, maker):
    [question] = await zalo.send(CITIZEN, "/lang")
    assert numbered(question) == {"1": t("lang.vi", "vi"), "2": t("lang.en", "vi")}
    assert t("typed.options_intro", "vi") in question
    assert "<b>" not in question
    assert await zalo.send(CITIZEN, "2") == [t("lang.changed", "en")]
    assert await locale_of(maker, CITIZEN) == "en"
    [question] = await zalo.send(CITIZEN, "/lang")
    assert t("typed.options_intro", "en") in question
    # the label's words in any language, with or without tone marks, answer too
    assert await zalo.send(CITIZEN, "tieng viet") == [t("lang.changed", "vi")]
    assert await locale_of(maker, CITIZEN) == "vi"


async def test_the_list_shown_last_survives_a_restart(zalo, maker):
    await zalo.send(CITIZEN, "/lang")
    async with maker() as s:
        row = await s.get(ShownChoices, ("zalo", CITIZEN))
    assert row is not None
    again = zalo.restarted()
    await again.send(CITIZEN, "2")
    assert await locale_of(maker, CITIZEN) == "en"
    await again.channel.close()


async def test_a_number_not_in_the_list_is_plain_text(zalo):
    await zalo.send(CITIZEN, "/lang")
    assert await zalo.send(CITIZEN, "7") == [t("text.hint_citizen", "vi")]


@pytest.fixture
async def notice(zalo, maker, clock):
    """A member of staff on Zalo and a directive '15/CT-UBND' waiting for acknowledgement."""
    async with maker() as s:
        unit = await f.unit(s, "PGD1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE)
        person = await f.person(s, "ST", unit, Role.STAFF, name="An")
        s.add(
            Contact(
                channel=Channel.ZALO,
                external_id=STAFF,
                person_id=person.id,
                locale="vi",
                created_at=clock.now(),
            )
        )
        rows = []
        for number in ("14/CT-UBND", "15/CT-UBND"):
            d = Directive(
                number=number,
                issued_on=date(2026, 11, 30),
                title=f"Công văn {number}",
                summary="Trích yếu",
                audience="everyone",
                target="all",
                ack_deadline=clock.now() + timedelta(days=2),
                created_by="test",
                created_at=clock.now() + timedelta(minutes=len(rows)),
            )
            s.add(d)
            await s.flush()
            assert d.id is not None
            assert person.id is not None
            r = DirectiveRecipient(directive_id=d.id, person_id=person.id, unit_id=unit.id)
            s.add(r)
            await s.flush()
            rows.append((d, r))
        await s.commit()
    return rows


async def acked(maker) -> dict[str, bool]:
    async with maker() as s:
        found = (
            await s.exec(
                select(Directive.number, DirectiveRecipient.acked_at).join(
                    DirectiveRecipient,
                    DirectiveRecipient.directive_id == Directive.id,  # type: ignore[arg-type]
                )
            )
        ).all()
    return {number: at is not None for number, at in found}


async def show_notice(zalo, row) -> str:
    d, r = row
    zalo.api.clear()
    outcome = await zalo.channel.send(
        STAFF, directives.notice(d, recipient_id=r.id, units="x"), "vi"
    )
    assert outcome.ok
    [text] = zalo.api.texts(STAFF)
    return text


@pytest.mark.parametrize("typed", ["1", "đã nhận", "Da nhan", "✅ Đã nhận", "OK", "received"])
async def test_a_short_reply_acknowledges_the_notice_shown_last(zalo, maker, notice, typed):
    text = await show_notice(zalo, notice[0])
    assert numbered(text) == {"1": t("directive.ack_button", "vi")}
    [reply] = await zalo.send(STAFF, typed)
    assert reply.startswith(re.sub(r"<[^>]+>", "", t("directive.notice_acked", "vi")).split("{")[0])
    assert await acked(maker) == {"14/CT-UBND": True, "15/CT-UBND": False}


@pytest.mark.parametrize("typed", ["OK 15", "ok 15/CT-UBND", "Đã nhận 15", "received 15"])
async def test_ok_and_a_number_acknowledges_that_directive(zalo, maker, notice, typed):
    await show_notice(zalo, notice[0])  # the list shows 14; the number names 15
    await zalo.send(STAFF, typed)
    assert await acked(maker) == {"14/CT-UBND": False, "15/CT-UBND": True}


async def test_ok_and_an_unknown_number_says_what_is_wrong(zalo, maker, notice):
    assert await zalo.send(STAFF, "OK 99") == [t("typed.no_directive", "vi", number="99")]
    assert await acked(maker) == {"14/CT-UBND": False, "15/CT-UBND": False}


async def test_a_bare_word_without_a_list_acknowledges_the_newest(zalo, maker, notice):
    await zalo.send(STAFF, "đã nhận")
    assert await acked(maker) == {"14/CT-UBND": False, "15/CT-UBND": True}


@pytest.fixture
async def counter(maker, clock):
    async with maker() as s:
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        s.add(
            ServiceCounter(
                code="Q1",
                name="Quầy 1",
                unit_id=desk.id,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await s.commit()


async def test_a_start_code_sent_as_the_first_message_opens_the_rating(zalo, maker, counter):
    greet = await zalo.send(CITIZEN, payload_for_counter("Q1"))
    assert "Bộ phận Một cửa" in greet[0]
    assert numbered(greet[-1])  # the dossier step's choices, as a list
    await zalo.send(CITIZEN, "bỏ qua")
    await zalo.send(CITIZEN, "2")
    for answer in ("5", "4", "bo qua", "1", "bỏ qua"):
        await zalo.send(CITIZEN, answer)
    await zalo.send(CITIZEN, "Trần Văn Bộ")
    await zalo.send(CITIZEN, "bỏ qua")
    thanks = await zalo.send(CITIZEN, "ẩn danh")
    assert thanks[0] == t("rating.thanks", "vi")
    async with maker() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)


@pytest.mark.parametrize("word", ["cancel", "Hủy", "huỷ", "thôi", "2"])
async def test_a_cancel_word_from_the_catalogs_cancels_the_flow(zalo, counter, word):
    """Words in either language and either tone-mark style; '2' is not a cancel (no number)."""
    await zalo.send(CITIZEN, f"/start {payload_for_counter('Q1')}")
    cancelled = await zalo.send(CITIZEN, word) == [t("flow.cancelled", "vi")]
    assert cancelled == (word != "2")


@pytest.fixture
async def webhook(zalo, maker, clock) -> AsyncIterator[TestClient]:
    hook = Webhook(zalo.settings, zalo.inbound, maker, clock)
    client = TestClient(TestServer(hook.web_app()))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize(
    "headers", [{}, {SECRET_HEADER: "wrong-secret-00"}, {SECRET_HEADER: SECRET[:-1]}]
)
async def test_the_webhook_refuses_a_request_without_the_right_secret(zalo, webhook, headers):
    answer = await webhook.post("/zalo", json=update(CITIZEN, "/lang"), headers=headers)
    assert answer.status == 403
    await zalo.inbound.drain()
    assert zalo.api.calls == []


async def test_the_webhook_routes_an_update_with_the_secret_once(zalo, webhook, maker):
    data = update(CITIZEN, "/lang", message_id="m-replayed")
    for _ in range(2):  # the same message twice (a replay): answered, handled once
        answer = await webhook.post("/zalo", json=data, headers={SECRET_HEADER: SECRET})
        assert answer.status == 200
        await zalo.inbound.drain()  # in-memory SQLite has one connection: one at a time
    [question] = zalo.api.texts(CITIZEN)
    assert numbered(question)
    bad = await webhook.post("/zalo", data=b"{}", headers={SECRET_HEADER: SECRET})
    assert bad.status == 400
    assert (await webhook.get("/zalo", headers={SECRET_HEADER: SECRET})).status == 405
    assert (await webhook.post("/other", json=data)).status == 404
