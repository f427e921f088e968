"""The user side over HTTP: users, chats, messages, buttons, documents, stream, control."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import telegram

from bot.sandbox import SandboxServer, User
from tests.sandbox.conftest import document_of, message_of, query_of

API = "/sandbox/api"
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def call(http: aiohttp.ClientSession, verb: str, path: str, **kwargs: Any) -> Any:
    """Call the user API and return the result (asserting ok)."""
    async with http.request(verb, API + path, **kwargs) as resp:
        body = await resp.json()
    assert body["ok"], body
    return body["result"]


async def test_create_users_and_groups(http: aiohttp.ClientSession) -> None:
    """Users get private chats with their id; groups get negative ids and members."""
    user = await call(http, "POST", "/users", json={"first_name": "Lê Thu Hà", "id": 777})
    assert user == {"id": 777, "is_bot": False, "first_name": "Lê Thu Hà", "language_code": "vi"}
    group = await call(http, "POST", "/chats", json={"title": "Ban Giám đốc", "members": [777]})
    assert group["id"] < 0
    assert group["members"] == [777]
    chats = await call(http, "GET", "/chats")
    assert {c["id"] for c in chats} == {777, group["id"]}
    assert [u["first_name"] for u in await call(http, "GET", "/users")] == ["Lê Thu Hà"]


async def test_conversation_over_http(
    http: aiohttp.ClientSession, tg: telegram.Bot, lan: User
) -> None:
    """A user writes, the bot answers with a button, the user presses it, the bot edits."""
    sent = await call(http, "POST", f"/chats/{lan.id}/messages", json={"text": "/start"})
    [update] = await tg.get_updates(timeout=0)
    assert update.update_id == sent["update_id"]
    reply = await tg.send_message(
        lan.id,
        "Bạn cần gì?",
        reply_to_message_id=message_of(update).message_id,
        reply_markup=telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("Tra cứu hồ sơ", callback_data="lookup")]]
        ),
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "/start"
    pressed = await call(
        http,
        "POST",
        f"/chats/{lan.id}/callbacks",
        json={"message_id": reply.message_id, "data": "lookup"},
    )
    updates = await tg.get_updates(offset=update.update_id + 1, timeout=0)
    assert query_of(updates[0]).id == pressed["callback_query_id"]
    await tg.answer_callback_query(pressed["callback_query_id"], text="Đang tra cứu…")
    await tg.edit_message_text("Hồ sơ đang xử lý", chat_id=lan.id, message_id=reply.message_id)
    answer = await call(http, "GET", f"/callbacks/{pressed['callback_query_id']}")
    assert answer["text"] == "Đang tra cứu…"
    result = await call(http, "GET", f"/chats/{lan.id}/messages")
    texts = [(m["sender"], m["text"]) for m in result["messages"]]
    assert texts == [("user", "/start"), ("bot", "Hồ sơ đang xử lý")]
    assert result["messages"][1]["edit_date"] >= result["messages"][1]["date"]


async def test_pressing_a_missing_button_fails(http: aiohttp.ClientSession, lan: User) -> None:
    """A button that is not on the message gives a 404/400 error, not an update."""
    async with http.post(
        f"{API}/chats/{lan.id}/callbacks", json={"message_id": 5, "data": "x"}
    ) as resp:
        assert resp.status == 404
        assert "no bot message 5" in (await resp.json())["description"]


async def test_user_document_upload(
    http: aiohttp.ClientSession, tg: telegram.Bot, lan: User
) -> None:
    """A multipart upload becomes a document update the bot can download."""
    form = aiohttp.FormData()
    form.add_field("file", "Đơn đề nghị".encode(), filename="đơn.txt", content_type="text/plain")
    form.add_field("caption", "Gửi anh chị")
    sent = await call(http, "POST", f"/chats/{lan.id}/documents", data=form)
    [update] = await tg.get_updates(timeout=0)
    assert update.update_id == sent["update_id"]
    document = document_of(message_of(update))
    assert (document.file_name, message_of(update).caption) == ("đơn.txt", "Gửi anh chị")
    remote = await tg.get_file(document.file_id)
    assert (await remote.download_as_bytearray()).decode() == "Đơn đề nghị"
    view = (await call(http, "GET", f"/chats/{lan.id}/messages"))["messages"][0]
    async with http.get(view["file_url"]) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert await resp.read() == "Đơn đề nghị".encode()


async def test_long_poll_for_changes(
    http: aiohttp.ClientSession, tg: telegram.Bot, lan: User
) -> None:
    """GET messages?since=V&wait=S returns when the bot sends something new."""
    first = await call(http, "GET", f"/chats/{lan.id}/messages")
    waiting = asyncio.create_task(
        call(http, "GET", f"/chats/{lan.id}/messages?since={first['version']}&wait=5")
    )
    await asyncio.sleep(0.05)
    await tg.send_message(lan.id, "Có tin mới")
    result = await asyncio.wait_for(waiting, 2)
    assert [m["text"] for m in result["messages"]] == ["Có tin mới"]


async def test_stream_sends_new_and_edited_messages(
    http: aiohttp.ClientSession, tg: telegram.Bot, lan: User
) -> None:
    """The SSE stream carries new messages, edits and deletions as they happen."""
    async with http.get(f"{API}/chats/{lan.id}/stream") as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        sent = await tg.send_message(lan.id, "<b>Mới</b>", parse_mode="HTML")
        await tg.edit_message_text("Đã sửa", chat_id=lan.id, message_id=sent.message_id)
        await tg.delete_message(lan.id, sent.message_id)
        events = await asyncio.wait_for(read_events(resp, 3), 2)
    assert [kind for kind, _ in events] == ["message", "edit", "delete"]
    assert events[0][1]["message"]["entities"] == [{"type": "bold", "offset": 0, "length": 3}]
    assert events[1][1]["message"]["text"] == "Đã sửa"
    assert events[2][1]["message"]["deleted"] is True


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[tuple[str, Any]]:
    """Read `count` server-sent events."""
    events: list[tuple[str, Any]] = []
    kind = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[len("data: ") :])))
            if len(events) == count:
                break
    return events


async def test_counters_faults_limits_and_reset(
    http: aiohttp.ClientSession, tg: telegram.Bot, lan: User, server: SandboxServer
) -> None:
    """Faults and limits change at runtime over HTTP; counters show the effect; reset clears."""
    faults = await call(http, "PUT", f"/chats/{lan.id}/faults", json={"blocked": True})
    assert faults["chats"][str(lan.id)]["blocked"] is True
    with pytest.raises(telegram.error.Forbidden):
        await tg.send_message(lan.id, "bị chặn")
    await call(http, "DELETE", f"/chats/{lan.id}/faults")
    limits = await call(http, "PUT", "/limits", json={"chat_burst": 1})
    assert limits["chat_burst"] == 1
    await tg.send_message(lan.id, "một")
    with pytest.raises(telegram.error.RetryAfter):
        await tg.send_message(lan.id, "hai")
    counters = await call(http, "GET", "/counters")
    assert counters["forbidden_by_chat"] == {str(lan.id): 1}
    assert counters["accepted_total"] == 1
    assert counters["rate_limited_total"] == 1
    await call(http, "POST", "/reset")
    assert await call(http, "GET", "/users") == []
    assert (await call(http, "GET", "/counters"))["accepted_total"] == 0


async def test_bad_control_input_is_refused(http: aiohttp.ClientSession) -> None:
    """Unknown fault fields and out-of-range shares answer 400."""
    async with http.put(f"{API}/faults", json={"error_rate": 2}) as resp:
        assert resp.status == 400
    async with http.put(f"{API}/limits", json={"warp": 9}) as resp:
        assert resp.status == 400
        assert "unknown limits field" in (await resp.json())["description"]


async def test_personas_endpoint(http: aiohttp.ClientSession, server: SandboxServer) -> None:
    """Personas set from Python are served to the page, and their users exist."""
    server.set_personas(
        [
            {
                "id": "chuyen-vien",
                "label": "Phạm Quốc Bảo",
                "role": "Chuyên viên",
                "unit": "Phòng Nội vụ",
                "user_id": 5001,
            },
        ]
    )
    personas = await call(http, "GET", "/personas")
    assert personas == [
        {
            "id": "chuyen-vien",
            "label": "Phạm Quốc Bảo",
            "role": "Chuyên viên",
            "unit": "Phòng Nội vụ",
            "user_id": 5001,
            "chat_id": 5001,
            "first_name": None,
            "last_name": None,
            "username": None,
            "language_code": "vi",
        }
    ]
    users = await call(http, "GET", "/users")
    assert users[0]["first_name"] == "Phạm Quốc Bảo"


async def test_page_and_static_files_are_served(http: aiohttp.ClientSession) -> None:
    """The chat simulator page and its local script and style load as UTF-8."""
    async with http.get("/") as resp:
        page = await resp.text()
        assert resp.status == 200
    for testid in ("persona-picker", "message-list", "message-input", "send-button"):
        assert f'data-testid="{testid}"' in page
    assert '<meta charset="utf-8">' in page
    assert "http" not in page.replace("http-equiv", "")
    async with http.get("/static/app.js") as resp:
        script = await resp.text()
    assert "innerHTML" not in script
    assert "data-message-id" in script
    async with http.get("/static/style.css") as resp:
        assert "Noto Sans" in await resp.text()
