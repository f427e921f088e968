"""The Telegram adapter answers python-telegram-bot's errors with neutral outcomes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest
import telegram
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Defaults, ExtBot
from telegram.request import BaseRequest

from bot.channels.contract import NOT_MODIFIED, STALE_FILE
from bot.channels.http import AiohttpRequest
from bot.channels.telegram import TOO_LONG, TelegramChannel, error_of, outcome_of
from bot.i18n import t
from bot.messages import Button, Html, OutboundMessage, StoredFile
from bot.sandbox import DEFAULT_TOKEN, SandboxServer
from bot.sandbox.faults import Faults
from bot.sandbox.limits import Limits

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
UID = 4343


@pytest.mark.parametrize(
    ("make", "kind", "code"),
    [
        (lambda: RetryAfter(7), "flood", ""),
        (lambda: Forbidden("Forbidden: bot was blocked by the user"), "blocked", ""),
        (lambda: ChatMigrated(-1001234), "failed", "chat_migrated"),
        (lambda: BadRequest("Wrong file identifier/http url specified"), "failed", STALE_FILE),
        (lambda: BadRequest("Bad Request: chat not found"), "failed", "bad_request"),
        (
            lambda: BadRequest("Message is not modified: specified new message content"),
            "sent",
            NOT_MODIFIED,
        ),
        (lambda: TimedOut(), "retry", ""),
        (lambda: NetworkError("Bad Gateway"), "retry", ""),
    ],
)
def test_each_error_becomes_an_outcome(make, kind, code):
    outcome = outcome_of(make())
    assert (outcome.kind, outcome.code) == (kind, code)


def test_a_flood_carries_the_delay_telegram_asked_for():
    outcome = outcome_of(RetryAfter(7))
    assert (outcome.delay, outcome.scope) == (7.0, "chat")


class Answers(BaseRequest):
    """A request backend that gives one canned answer: python-telegram-bot's own error path."""

    def __init__(self, status: int, payload: bytes) -> None:
        self.answer = (status, payload)

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, *args, **kwargs) -> tuple[int, bytes]:
        return self.answer


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (
            429,
            b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3",'
            b'"parameters":{"retry_after":3}}',
        ),
        (
            403,
            b'{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}',
        ),
        (400, b'{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}'),
        (
            400,
            b'{"ok":false,"description":"Bad Request: group chat was upgraded",'
            b'"parameters":{"migrate_to_chat_id":-1001234}}',
        ),
        (400, b'{"ok":false,"description":"Bad Request: wrong file identifier"}'),
        (400, b'{"ok":false,"description":"Bad Request: odd","parameters":{"x":1}}'),
        (404, b'{"ok":false,"error_code":404,"description":"Not Found"}'),
        (409, b'{"ok":false,"error_code":409,"description":"Conflict: terminated"}'),
        (500, b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'),
        (502, b"<html>Bad Gateway</html>"),
        (599, b""),
    ],
)
async def test_the_direct_path_raises_what_python_telegram_bot_raises(status, payload):
    with pytest.raises(TelegramError) as raised:
        await Answers(status, payload).post("http://sandbox/botX/sendMessage")
    ours = error_of(status, payload)
    assert (type(ours), str(ours)) == (type(raised.value), str(raised.value))
    assert outcome_of(ours) == outcome_of(raised.value)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = SandboxServer(limits=Limits.off())
    await server.start()
    server.create_user("Người dùng", user_id=UID)
    yield server
    await server.stop()


@pytest.fixture
async def channel(sandbox) -> AsyncIterator[TelegramChannel]:
    bot = telegram.Bot(
        DEFAULT_TOKEN,
        base_url=sandbox.base_url,
        base_file_url=sandbox.file_base_url,
        request=AiohttpRequest(connection_pool_size=4),
    )
    async with bot:
        yield TelegramChannel(bot, TZ)


def notice(n: int) -> OutboundMessage:
    """Return a bulk notice with one button."""
    return OutboundMessage(
        "broadcast.message",
        {"text": Html(f"<b>Thông báo số {n}</b>: lịch tiếp công dân thay đổi.")},
        buttons=((Button("menu.help", f"help:{n}"),),),
    )


async def test_a_bulk_text_arrives_as_python_telegram_bot_would_send_it(sandbox, channel):
    message = notice(1)
    first = await channel.send(str(UID), message, "vi")
    second = await channel.send(str(UID), message, "vi")

    shown = sandbox.messages(UID)
    assert [first.kind, second.kind] == ["sent", "sent"]
    assert [first.message_id, second.message_id] == [str(m["message_id"]) for m in shown]
    assert shown[0]["text"] == "📢 Thông báo số 1: lịch tiếp công dân thay đổi."
    assert [e["type"] for e in shown[0]["entities"]] == ["bold"]
    button = shown[0]["reply_markup"]["inline_keyboard"][0][0]
    assert (button["text"], button["callback_data"]) == (t("menu.help", "vi"), "help:1")


async def test_a_long_text_goes_in_chunks_with_the_buttons_on_the_last(sandbox, channel):
    lines = "\n".join(f"Dòng {i}: " + "chữ " * 40 for i in range(60))
    long = OutboundMessage("broadcast.message", {"text": lines}, buttons=notice(2).buttons)
    outcome = await channel.send(str(UID), long, "vi")

    shown = sandbox.messages(UID)
    assert len(shown) > 1
    assert outcome.message_id == str(shown[-1]["message_id"])
    assert ["reply_markup" in m for m in shown] == [False] * (len(shown) - 1) + [True]


async def test_the_direct_path_answers_each_fault_with_its_outcome(sandbox, channel):
    sandbox.set_limits(Limits(global_rate=1, global_burst=1))
    assert (await channel.send(str(UID), notice(3), "vi")).kind == "sent"
    flood = await channel.send(str(UID), notice(3), "vi")
    assert (flood.kind, flood.scope) == ("flood", "chat")
    assert flood.delay >= 1

    sandbox.set_limits(Limits.off())
    sandbox.set_faults(Faults.from_json({"methods": {"sendMessage": 500}}))
    assert (await channel.send(str(UID), notice(3), "vi")).kind == "retry"
    sandbox.set_faults(Faults.from_json({"blocked": [UID]}))
    assert (await channel.send(str(UID), notice(3), "vi")).kind == "blocked"
    sandbox.set_faults(Faults())
    missing = await channel.send("777", notice(3), "vi")
    assert (missing.kind, missing.code) == ("failed", "bad_request")


async def test_an_unreachable_server_means_try_again():
    bot = telegram.Bot(DEFAULT_TOKEN, base_url="http://127.0.0.1:9/bot", request=AiohttpRequest())
    async with contextlib.AsyncExitStack() as stack:
        await bot.request.initialize()
        stack.push_async_callback(bot.request.shutdown)
        outcome = await TelegramChannel(bot, TZ).send(str(UID), notice(4), "vi")
    assert outcome.kind == "retry"


async def test_a_bot_with_defaults_sends_through_python_telegram_bot(sandbox, monkeypatch):
    async def direct(*args, **kwargs):
        raise AssertionError("the direct path would skip the Bot's defaults")

    monkeypatch.setattr(AiohttpRequest, "post_json", direct)
    bot = ExtBot(
        DEFAULT_TOKEN,
        base_url=sandbox.base_url,
        base_file_url=sandbox.file_base_url,
        request=AiohttpRequest(connection_pool_size=4),
        defaults=Defaults(disable_notification=True),
    )
    async with bot:
        outcome = await TelegramChannel(bot, TZ).send(str(UID), notice(5), "vi")

    assert outcome.message_id == str(sandbox.messages(UID)[-1]["message_id"])


async def test_an_edit_and_a_press_answer_go_direct_and_keep_their_outcomes(
    sandbox, channel, monkeypatch
):
    sent = await channel.send(str(UID), notice(6), "vi")
    assert sent.message_id is not None
    update_id = sandbox.press_button(UID, int(sent.message_id), "help:6")
    press = sandbox.callback_answer(update_id)
    assert press is not None

    def through_python_telegram_bot(*args, **kwargs):
        raise AssertionError("an edit or a press answer went through python-telegram-bot")

    monkeypatch.setattr(channel.bot, "_post", through_python_telegram_bot)
    edited = await channel.edit(str(UID), sent.message_id, notice(7), "vi")
    unchanged = await channel.edit(str(UID), sent.message_id, notice(7), "vi")
    answered = await channel.answer(press.id)
    again = await channel.answer(press.id)
    missing = await channel.edit(str(UID), "999", notice(7), "vi")

    shown = sandbox.messages(UID)[-1]
    assert shown["text"] == "📢 Thông báo số 7: lịch tiếp công dân thay đổi."
    assert shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "help:7"
    assert (edited.kind, edited.message_id) == ("sent", sent.message_id)
    assert (unchanged.kind, unchanged.code) == ("sent", NOT_MODIFIED)
    assert answered.kind == "sent"
    assert sandbox.callback_answer(update_id).answered
    assert (again.kind, again.code) == ("failed", "bad_request")
    assert (missing.kind, missing.code) == ("failed", "bad_request")


async def test_a_caption_edit_too_long_for_a_caption_is_not_cut_but_sent_anew(sandbox, channel):
    """Editing a file's caption with a text over 1,024 characters fails unsent (the reply path
    then sends it anew in parts); before, the caption was cut at a line break and the rest lost."""
    file = StoredFile("cv.pdf", "application/pdf", data=b"%PDF-1.4 cong van")
    sent = await channel.send_file(str(UID), notice(8), "vi", file)
    assert sent.message_id is not None
    long = OutboundMessage("broadcast.message", {"text": "\n".join(["chữ " * 30] * 20)})

    edit = await channel.edit(str(UID), sent.message_id, long, "vi", caption=True)

    assert (edit.kind, edit.code, edit.attempted) == ("failed", TOO_LONG, False)
    [shown] = sandbox.messages(UID)
    assert shown["caption"] == "📢 Thông báo số 8: lịch tiếp công dân thay đổi."


async def test_a_file_with_a_long_text_goes_as_parts_and_resumes_after_the_file(sandbox, channel):
    file = StoredFile("cv.pdf", "application/pdf", data=b"%PDF-1.4 cong van")
    text = "\n".join(f"Dòng {i}: " + "chữ " * 40 for i in range(30))  # over 4,096: 2 text parts
    message = OutboundMessage("broadcast.message", {"text": text}, buttons=notice(9).buttons)
    sandbox.set_faults(Faults.from_json({"methods": {"sendMessage": {"status": 500, "after": 1}}}))

    failed = await channel.send_file(str(UID), message, "vi", file)
    sandbox.set_faults(Faults())
    resumed = await channel.send_file(
        str(UID),
        message,
        "vi",
        StoredFile("cv.pdf", "application/pdf", file_id=failed.file_id),
        first=failed.parts,
    )

    shown = sandbox.messages(UID)
    assert (failed.kind, failed.parts, failed.file_id is not None) == ("retry", 2, True)
    assert (resumed.kind, resumed.parts, resumed.file_id) == ("sent", 3, failed.file_id)
    assert ["document" in m for m in shown] == [True, False, False]
    assert ["reply_markup" in m for m in shown] == [False, False, True]
