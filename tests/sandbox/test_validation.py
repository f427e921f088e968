"""Requests Telegram would refuse are refused the same way: codes and descriptions."""

from __future__ import annotations

import json

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.sandbox import DEFAULT_TOKEN, SandboxServer, User

API = f"/bot{DEFAULT_TOKEN}"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("xuống<br>dòng", 'Unsupported start tag "br" at byte offset 7'),
        ("<b>đậm</i>", 'Unmatched end tag at byte offset 9, expected "</b>", found "</i>"'),
        ("<b>chưa đóng", 'Can\'t find end tag corresponding to start tag "b"'),
        ("thừa</b>", "Unexpected end tag at byte offset 6"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ('<a href="https://x.vn"', "Unclosed start tag at byte offset 0"),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
    ],
)
async def test_bad_html_is_refused(
    http: aiohttp.ClientSession, lan: User, text: str, detail: str
) -> None:
    """Malformed or unsupported HTML answers 400 "can't parse entities: ..." word for word."""
    params = {"chat_id": lan.id, "text": text, "parse_mode": "HTML"}
    async with http.post(f"{API}/sendMessage", json=params) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": f"Bad Request: can't parse entities: {detail}",
    }


async def test_ptb_raises_bad_request_for_bad_html(tg: telegram.Bot, lan: User) -> None:
    """python-telegram-bot turns the parse error into BadRequest."""
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)can't parse entities"):
        await tg.send_message(lan.id, "<p>đoạn</p>", parse_mode="HTML")


async def test_good_html_with_every_tag(tg: telegram.Bot, lan: User) -> None:
    """All of Telegram's tags and entities are accepted and mapped to entities."""
    html = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        "<strike>k</strike><del>d</del><a href='https://dichvucong.gov.vn'>a</a><code>c</code>"
        '<pre><code class="language-python">p</code></pre><span class="tg-spoiler">x</span>'
        "<tg-spoiler>y</tg-spoiler><blockquote>q</blockquote> &lt;&gt;&amp;&quot;"
    )
    sent = await tg.send_message(lan.id, html, parse_mode="HTML")
    assert sent.text == 'bsieunskdacpxyq <>&"'
    kinds = [entity.type for entity in sent.entities]
    assert kinds == [
        "bold",
        "bold",
        "italic",
        "italic",
        "underline",
        "underline",
        "strikethrough",
        "strikethrough",
        "strikethrough",
        "text_link",
        "code",
        "pre",
        "spoiler",
        "spoiler",
        "blockquote",
    ]
    assert sent.entities[11].language == "python"


async def test_text_length_limit(tg: telegram.Bot, lan: User) -> None:
    """4096 characters pass, 4097 are "message is too long"; markup does not count."""
    assert await tg.send_message(lan.id, "ư" * 4096)
    assert await tg.send_message(lan.id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message is too long"):
        await tg.send_message(lan.id, "a" * 4097)


async def test_empty_text_after_parsing(tg: telegram.Bot, lan: User) -> None:
    """Text that is only markup and spaces is "message text is empty"."""
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message text is empty"):
        await tg.send_message(lan.id, "<b>  </b>", parse_mode="HTML")


async def test_caption_length_limit(tg: telegram.Bot, lan: User) -> None:
    """Captions over 1024 characters are refused."""
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)caption is too long"):
        await tg.send_document(lan.id, document=b"x", filename="a.txt", caption="c" * 1025)


async def test_callback_data_over_64_bytes(tg: telegram.Bot, lan: User) -> None:
    """callback_data of 65 bytes (here 22 Vietnamese letters of 3 bytes) is BUTTON_DATA_INVALID."""
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x" * 64)]])
    assert await tg.send_message(lan.id, "vừa", reply_markup=fits)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("quá", callback_data="ệ" * 22)]])
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)button_data_invalid"):
        await tg.send_message(lan.id, "dài", reply_markup=too_long)


async def test_reply_keyboard_and_removal(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """A reply keyboard is shown in the chat view and removed by remove_keyboard."""
    markup = telegram.ReplyKeyboardMarkup([["Nộp hồ sơ", "Tra cứu"]], one_time_keyboard=True)
    sent = await tg.send_message(lan.id, "Chọn việc", reply_markup=markup)
    assert sent.reply_markup is None
    view = server.sandbox.chat_view(lan.id)
    assert view["reply_keyboard"]["keyboard"] == [[{"text": "Nộp hồ sơ"}, {"text": "Tra cứu"}]]
    await tg.send_message(lan.id, "Xong", reply_markup=telegram.ReplyKeyboardRemove())
    assert server.sandbox.chat_view(lan.id)["reply_keyboard"] is None


async def test_unknown_chat(tg: telegram.Bot) -> None:
    """An unknown chat_id answers 400 "chat not found"."""
    with pytest.raises(telegram.error.BadRequest, match="Chat not found"):
        await tg.send_message(424242, "ai đó")


async def test_unknown_method_is_404(http: aiohttp.ClientSession) -> None:
    """An unknown method answers Telegram's 404 body."""
    async with http.post(f"{API}/sendHologram", json={}) as resp:
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_bad_token_is_401(http: aiohttp.ClientSession) -> None:
    """A token the sandbox does not host answers 401 Unauthorized."""
    async with http.get("/bot999:WRONG/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_get_query_form_and_case_insensitive_method(
    http: aiohttp.ClientSession, lan: User
) -> None:
    """GET query parameters, form bodies and JSON bodies all work; method names ignore case."""
    markup = json.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
    query = {"chat_id": str(lan.id), "text": "qua GET", "reply_markup": markup}
    async with http.get(f"{API}/SENDMESSAGE", params=query) as resp:
        body = await resp.json()
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"
    form = aiohttp.FormData({"chat_id": str(lan.id), "text": "qua form"})
    async with http.post(f"{API}/sendmessage", data=form) as resp:
        assert (await resp.json())["result"]["text"] == "qua form"
    async with http.post(f"{API}/sendMessage", json={"chat_id": lan.id, "text": "qua JSON"}) as r:
        result = (await r.json())["result"]
    assert result["text"] == "qua JSON"
    assert result["from"] == {
        "id": 123456,
        "is_bot": True,
        "first_name": "ReformBot Sandbox",
        "username": "reformbot_sandbox_bot",
    }
    assert isinstance(result["date"], int)


async def test_bad_reply_markup_json(http: aiohttp.ClientSession, lan: User) -> None:
    """Broken reply_markup JSON is refused like Telegram."""
    params = {"chat_id": lan.id, "text": "x", "reply_markup": "{not json"}
    async with http.post(f"{API}/sendMessage", json=params) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["description"] == "Bad Request: can't parse reply keyboard markup JSON object"


async def test_edit_someone_elses_message(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """The bot cannot edit a user's message nor a missing one."""
    server.send_text(lan.id, "của tôi")
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message can't be edited"):
        await tg.edit_message_text("đổi", chat_id=lan.id, message_id=1)
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)message to edit not found"):
        await tg.edit_message_text("đổi", chat_id=lan.id, message_id=99)


async def test_answer_unknown_callback(tg: telegram.Bot) -> None:
    """Answering an unknown callback query id is refused."""
    with pytest.raises(telegram.error.BadRequest, match=r"(?i)query is too old"):
        await tg.answer_callback_query("123", text="muộn")
