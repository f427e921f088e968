"""The aiohttp request backend: a python-telegram-bot Bot over it, against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram
from telegram.error import Forbidden, NetworkError, RetryAfter

from bot.channels.http import AiohttpRequest
from bot.sandbox import DEFAULT_TOKEN, SandboxServer
from bot.sandbox.faults import Faults
from bot.sandbox.limits import Limits

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
UID = 4242


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = SandboxServer(limits=Limits.off())
    await server.start()
    server.create_user("Người dùng", user_id=UID)
    yield server
    await server.stop()


@pytest.fixture
async def bot(sandbox) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(
        DEFAULT_TOKEN,
        base_url=sandbox.base_url,
        base_file_url=sandbox.file_base_url,
        request=AiohttpRequest(connection_pool_size=4),
    ) as tg:
        yield tg


async def test_texts_with_buttons_and_files_arrive_as_sent(sandbox, bot):
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Đã nhận", callback_data="ack:1")]]
    )
    sent = await bot.send_message(
        UID, "<b>Công văn</b> số 12", parse_mode="HTML", reply_markup=markup
    )
    doc = await bot.send_document(
        UID, b"%PDF-1.4 tiny", filename="cv-12.pdf", caption="Tệp đính kèm"
    )

    text, document = sandbox.messages(UID)
    assert text["text"] == "Công văn số 12"
    assert text["message_id"] == sent.message_id
    assert text["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ack:1"
    assert document["caption"] == "Tệp đính kèm"
    assert document["document"]["file_name"] == "cv-12.pdf"
    assert document["document"]["file_size"] == len(b"%PDF-1.4 tiny")
    assert doc.document is not None
    assert doc.document.file_id == document["document"]["file_id"]


async def test_platform_errors_keep_their_python_telegram_bot_types(sandbox, bot):
    sandbox.set_limits(Limits(global_rate=1, global_burst=1))
    await bot.send_message(UID, "một")
    with pytest.raises(RetryAfter):
        await bot.send_message(UID, "hai")
    sandbox.set_limits(Limits.off())
    sandbox.set_faults(Faults.from_json({"blocked": [UID]}))
    with pytest.raises(Forbidden):
        await bot.send_message(UID, "ba")


async def test_an_unreachable_server_is_a_network_error():
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.post("http://127.0.0.1:9/botX/getMe")
    finally:
        await request.shutdown()
