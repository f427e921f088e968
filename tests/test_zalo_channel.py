"""The Zalo Bot API adapter: calls, splitting at 2000, errors as outcomes, plain text, events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.channels.contract import Limits
from bot.channels.render import plain_text
from bot.channels.replies import Replies
from bot.channels.zalo import (
    TEXT_MAX,
    Answer,
    ZaloApi,
    ZaloChannel,
    outcome_of,
    to_event,
)
from bot.config import ZaloSettings
from bot.i18n import t
from bot.messages import Button, Html, InboundEvent, OutboundMessage, StoredFile
from bot.zalo_app import Poller
from tests.zalo_fake import TOKEN, FakeZaloApi, update

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LIMITS = Limits(overall=10, per_chat=1, per_group=1, text_max=TEXT_MAX, caption_max=2000)
CHAT = "7312345678901234567"


@pytest.fixture
async def api() -> AsyncIterator[FakeZaloApi]:
    server = FakeZaloApi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def channel(api) -> AsyncIterator[ZaloChannel]:
    chan = ZaloChannel(ZaloApi(TOKEN, api.base), TZ, LIMITS)
    await chan.open()
    yield chan
    await chan.close()


async def test_a_long_text_is_split_at_line_breaks_each_part_one_message_in_order(api, channel):
    text = "\n".join(f"{i:04d} " + "x" * 45 for i in range(100))  # 5,099 characters
    message = OutboundMessage("broadcast.message", {"text": Html(text)})
    sent = await channel.send(CHAT, message, "vi")
    parts = api.texts(CHAT)
    assert len(parts) == 3
    assert all(1 <= len(p) <= 2000 for p in parts)
    assert "\n".join(parts) == t("broadcast.message", "vi", text=text)
    assert all(p.endswith("x") for p in parts)  # cut at line breaks, never inside a line
    last = api.sent()[-1]
    assert sent.ok
    assert isinstance(sent.message_id, str)
    assert sent.message_id.startswith("z")
    assert last["chat_id"] == CHAT


async def test_every_call_is_a_post_with_json_to_bot_token_method(api):
    client = ZaloApi(TOKEN, api.base + "/")
    for call in (
        client.get_me(),
        client.set_webhook("https://bot.example.gov.vn/zalo", "s3cret-token"),
        client.get_webhook_info(),
        client.delete_webhook(),
        client.send_photo(CHAT, "https://example.gov.vn/a.png", "Ảnh"),
        client.send_chat_action(CHAT),
    ):
        assert (await call).ok
    await client.close()
    assert [c.method for c in api.calls] == [
        "getMe",
        "setWebhook",
        "getWebhookInfo",
        "deleteWebhook",
        "sendPhoto",
        "sendChatAction",
    ]
    assert api.calls[1].params == {
        "url": "https://bot.example.gov.vn/zalo",
        "secret_token": "s3cret-token",
    }
    assert api.calls[4].params["photo"] == "https://example.gov.vn/a.png"


async def test_http_200_with_ok_false_is_an_error(api, channel):
    api.script("sendMessage", 200, {"ok": False, "error_code": 400, "description": "bad chat"})
    outcome = await channel.send(CHAT, OutboundMessage("lang.changed"), "vi")
    assert outcome.kind == "failed"
    assert outcome.code == "bad_request"
    assert "bad chat" in outcome.error


@pytest.mark.parametrize(
    ("status", "body", "kind", "delay", "code"),
    [
        (
            200,
            {"ok": False, "error_code": 429, "description": "Too many requests"},
            "flood",
            1.0,
            "",
        ),
        (
            429,
            {"ok": False, "error_code": 429, "description": "x", "parameters": {"retry_after": 7}},
            "flood",
            7.0,
            "",
        ),
        (502, {"ok": False, "error_code": 502, "description": "Bad gateway"}, "retry", 0.0, ""),
        (200, {"ok": False, "error_code": 500, "description": "internal"}, "retry", 0.0, ""),
        (502, "<html>proxy</html>", "retry", 0.0, ""),
        (200, {"ok": False, "error_code": 403, "description": "Forbidden"}, "blocked", 0.0, ""),
        (
            200,
            {"ok": False, "error_code": 400, "description": "user blocked bot"},
            "blocked",
            0,
            "",
        ),
        (
            200,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
            "failed",
            0,
            "unauthorized",
        ),
        (
            200,
            {"ok": False, "error_code": 404, "description": "Not found"},
            "failed",
            0,
            "bad_request",
        ),
    ],
)
async def test_errors_map_to_neutral_outcomes(api, channel, status, body, kind, delay, code):
    api.script("sendMessage", status, body)
    outcome = await channel.send(CHAT, OutboundMessage("lang.changed"), "vi")
    assert (outcome.kind, outcome.delay, outcome.code) == (kind, delay, code)
    if kind == "flood":
        assert outcome.scope == "bot"


async def test_a_network_fault_is_retried():
    client = ZaloApi(TOKEN, "http://127.0.0.1:9")  # nothing listens on the discard port
    outcome = outcome_of(await client.send_message(CHAT, "a"))
    await client.close()
    assert outcome.kind == "retry"


def test_an_answer_that_is_not_json_keeps_its_status():
    assert outcome_of(Answer(503, False, error_code=503)).kind == "retry"


async def test_edit_is_not_supported_so_the_reply_is_sent_anew(api, channel):
    event = InboundEvent("zalo", CHAT, CHAT, action="lang:en", message_id="m1")
    await Replies(channel).deliver(event, [OutboundMessage("lang.changed", edit=True)], "vi")
    assert [c.method for c in api.calls] == ["sendMessage"]
    assert api.texts(CHAT) == [t("lang.changed", "vi")]
    assert (await channel.answer("press")).ok


async def test_html_is_rendered_plain_and_buttons_become_a_numbered_list(api, channel):
    message = OutboundMessage(
        "broadcast.message",
        {"text": Html('<b>Họp</b> lúc <a href="https://x.gov.vn/a">đây</a> &amp; 8:00')},
        buttons=((Button("lang.vi", "lang:vi"), Button("lang.en", "lang:en")),),
    )
    text = channel.text(OutboundMessage("text.hint_citizen"), "vi")
    assert "<b>" not in text
    assert "</b>" not in text
    shown = channel.text(message, "vi")
    assert shown.startswith("📢 Họp lúc đây (https://x.gov.vn/a) & 8:00\n\n")
    assert shown.endswith(
        "\n".join(
            [
                t("typed.options_intro", "vi"),
                f"1. {t('lang.vi', 'vi')}",
                f"2. {t('lang.en', 'vi')}",
            ]
        )
    )
    english = channel.text(message, "en")
    assert t("typed.options_intro", "en") in english


def test_user_text_keeps_its_angle_brackets_and_catalog_placeholders_stay():
    message = OutboundMessage("errors.unknown_command", {"command": "<b>x</b> & y"})
    text = plain_text(message, "vi")
    assert "<b>x</b> & y" in text
    assert "&amp;" not in text
    assert "&lt;" not in text


def test_flow_choices_keep_their_numbers_and_back_and_cancel_are_words():
    message = OutboundMessage(
        "rating.ask_overall",
        buttons=(
            (Button("rating.level_button.5", "flow:t:lv5", number=5),),
            (Button("rating.level_button.1", "flow:t:lv1", number=1),),
            (Button("flow.back", "flow:t:__back"), Button("flow.cancel", "flow:t:__cancel")),
        ),
    )
    lines = plain_text(message, "vi").splitlines()[-4:]
    assert lines == [
        f"5. {t('rating.level_button.5', 'vi')}",
        f"1. {t('rating.level_button.1', 'vi')}",
        f"– {t('flow.back', 'vi')}",
        f"– {t('flow.cancel', 'vi')}",
    ]


async def test_a_document_goes_as_its_name_and_where_to_get_it(api, channel):
    file = StoredFile("cong-van-125.pdf", "application/pdf", data=b"%PDF")
    outcome = await channel.send_file(CHAT, OutboundMessage("lang.changed"), "vi", file)
    assert outcome.ok
    assert outcome.file_id is None
    [text] = api.texts(CHAT)
    assert text.endswith(t("zalo.file_note", "vi", name="cong-van-125.pdf"))


async def test_a_photo_by_url_goes_with_its_caption(api, channel):
    file = StoredFile("a.png", "image/png", file_id="https://example.gov.vn/a.png")
    outcome = await channel.send_file(CHAT, OutboundMessage("lang.changed"), "vi", file)
    assert outcome.ok
    assert outcome.file_id == "https://example.gov.vn/a.png"
    [photo] = api.sent("sendPhoto")
    assert photo["caption"] == t("lang.changed", "vi")


def test_an_update_becomes_an_event_with_string_ids():
    data = update(12345, "/start rate_c_Q1", name="Nguyễn Văn An")
    data["message"]["message_id"] = 987
    event = to_event(data)
    assert event is not None
    assert (event.channel, event.external_id, event.chat_id) == ("zalo", "12345", "12345")
    assert (event.message_id, event.display_name) == ("987", "Nguyễn Văn An")
    assert (event.command, event.args, event.chat_type) == ("start", ("rate_c_Q1",), "private")
    group = to_event(update(5, "chào", chat_type="GROUP", name=None))
    assert group is not None
    assert group.chat_type == "group"
    assert group.display_name is None
    assert to_event({"event_name": "message.sticker.received"}) is None


class Submitted:
    """An inbound that only records what the poller handed over."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def submit(self, data: dict[str, Any]) -> None:
        self.updates.append(data)


async def test_getupdates_408_is_nothing_new_and_a_fault_waits(api):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    inbound = Submitted()
    poller = Poller(ZaloApi(TOKEN, api.base), inbound, None, timeout=1, sleep=sleep)  # type: ignore[arg-type]
    assert await poller.poll_once() == 1.0
    assert inbound.updates == []
    assert waits == []
    api.updates.append(update("42", "xin chào"))
    await poller.poll_once()
    assert [u["message"]["text"] for u in inbound.updates] == ["xin chào"]
    assert api.sent("getUpdates")[-1] == {"timeout": "1"}
    api.script("getUpdates", 502, {"ok": False, "error_code": 502, "description": "down"})
    assert await poller.poll_once(2.0) == 4.0
    assert waits == [2.0]
    await poller.api.close()


def test_limits_come_from_the_settings():
    from bot.channels.zalo import limits_of

    limits = limits_of(ZaloSettings(rate=5, chat_rate=0.5))
    assert (limits.overall, limits.per_chat, limits.text_max, limits.caption_max) == (
        5,
        0.5,
        2000,
        2000,
    )
