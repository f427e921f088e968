"""The Zalo Bot API: every method, its error shapes (HTTP 200 with ok=false), 408 on an empty
long poll, string ids and dates in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.sandbox.zalo_support import WALL_START, ZaloEnv, zalo_env

LAN = "7100000000000000101"


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Zalo and one user, Lan."""
    async with zalo_env() as started:
        started.zalo.create_user("Nguyễn Thị Lan", user_id=LAN)
        yield started


async def test_get_me_names_the_bot_with_a_string_id(env: ZaloEnv) -> None:
    """getMe answers ok with the bot's id (a string) and name."""
    me = await env.result("getMe")
    assert me["id"] == env.zalo.bot.id
    assert isinstance(me["id"], str)
    assert me["account_name"] == env.zalo.bot.name


async def test_wrong_token_is_a_401_in_the_body(env: ZaloEnv) -> None:
    """A wrong token gets HTTP 200 with ok=false and error_code 401."""
    status, body = await env.call("getMe", token="999:WRONG")
    assert status == 200
    assert body["ok"] is False
    assert body["error_code"] == 401
    assert "Unauthorized" in body["description"]


async def test_unknown_method_is_a_404_in_the_body(env: ZaloEnv) -> None:
    """A method Zalo lacks gets ok=false and error_code 404."""
    status, body = await env.call("editMessageText", chat_id=LAN, text="x")
    assert (status, body["ok"], body["error_code"]) == (200, False, 404)


async def test_get_updates_returns_one_update_then_408(env: ZaloEnv) -> None:
    """A user's text comes as one update with string ids and a date in ms; then 408."""
    env.zalo.send_text(LAN, "Xin chào")
    env.zalo.send_text(LAN, "Lần hai")
    update = await env.result("getUpdates", timeout=0)
    assert update["event_name"] == "message.text.received"
    message = update["message"]
    assert message["chat"] == {"id": LAN, "chat_type": "PRIVATE"}
    assert message["from"]["id"] == LAN
    assert message["from"]["display_name"] == "Nguyễn Thị Lan"
    assert message["text"] == "Xin chào"
    assert isinstance(message["message_id"], str)
    assert message["date"] == int(WALL_START * 1000)
    second = await env.result("getUpdates", timeout="0")
    assert second["message"]["text"] == "Lần hai"
    status, body = await env.call("getUpdates", timeout=0)
    assert (status, body["ok"], body["error_code"]) == (200, False, 408)


async def test_get_updates_waits_for_a_message(env: ZaloEnv) -> None:
    """A long poll started before the user writes returns the update when it comes."""
    poll = asyncio.create_task(env.call("getUpdates", timeout=5))
    await asyncio.sleep(0.05)
    assert not poll.done()
    env.zalo.send_text(LAN, "1")
    _, body = await asyncio.wait_for(poll, 5)
    assert body["result"]["message"]["text"] == "1"


async def test_get_updates_refuses_a_bad_timeout(env: ZaloEnv) -> None:
    """A timeout that is not a number is a 400 in the body."""
    status, body = await env.call("getUpdates", timeout="soon")
    assert (status, body["error_code"]) == (200, 400)
    assert "timeout" in body["description"]


async def test_send_message_reaches_the_chat(env: ZaloEnv) -> None:
    """sendMessage answers a string message id; the user sees the text."""
    result = await env.result("sendMessage", chat_id=LAN, text="Kính chào Ông/Bà")
    assert isinstance(result["message_id"], str)
    shown = await env.bot_messages(LAN)
    assert [(m["sender"], m["text"]) for m in shown] == [("bot", "Kính chào Ông/Bà")]


@pytest.mark.parametrize("text", ["", "x" * 2001])
async def test_send_message_refuses_a_text_out_of_1_to_2000(env: ZaloEnv, text: str) -> None:
    """An empty text or one over 2000 characters is a 400 naming the bounds; nothing is sent."""
    status, body = await env.call("sendMessage", chat_id=LAN, text=text)
    assert (status, body["ok"], body["error_code"]) == (200, False, 400)
    assert "1-2000" in body["description"]
    assert await env.bot_messages(LAN) == []


async def test_send_message_takes_2000_characters(env: ZaloEnv) -> None:
    """Exactly 2000 characters pass."""
    await env.result("sendMessage", chat_id=LAN, text="đ" * 2000)
    assert len((await env.bot_messages(LAN))[0]["text"]) == 2000


async def test_send_message_wants_string_ids_and_a_known_chat(env: ZaloEnv) -> None:
    """A numeric chat_id or an unknown chat is a 400."""
    _, numeric = await env.call("sendMessage", chat_id=int(LAN), text="x")
    assert numeric["error_code"] == 400
    assert "chat_id must be a string" in numeric["description"]
    _, unknown = await env.call("sendMessage", chat_id="123", text="x")
    assert (unknown["error_code"], unknown["description"]) == (400, "Bad Request: chat not found")


async def test_send_photo_by_url_with_a_caption(env: ZaloEnv) -> None:
    """sendPhoto shows the photo URL and caption; a bad URL or long caption is refused."""
    url = "https://example.org/qr.png"
    await env.result("sendPhoto", chat_id=LAN, photo=url, caption="Mã QR")
    shown = (await env.bot_messages(LAN))[0]
    assert (shown["photo"], shown["caption"]) == (url, "Mã QR")
    _, bad_url = await env.call("sendPhoto", chat_id=LAN, photo="file.png")
    assert bad_url["error_code"] == 400
    _, long_caption = await env.call("sendPhoto", chat_id=LAN, photo=url, caption="x" * 2001)
    assert long_caption["error_code"] == 400
    assert len(await env.bot_messages(LAN)) == 1


async def test_send_chat_action_shows_typing_until_the_reply(env: ZaloEnv) -> None:
    """sendChatAction typing turns the indicator on; the next message turns it off."""
    assert await env.result("sendChatAction", chat_id=LAN, action="typing") is True
    assert (await env.user("GET", f"/chats/{LAN}/messages"))["typing"] is True
    await env.result("sendMessage", chat_id=LAN, text="Đây")
    assert (await env.user("GET", f"/chats/{LAN}/messages"))["typing"] is False
    _, bad = await env.call("sendChatAction", chat_id=LAN, action="dancing")
    assert bad["error_code"] == 400


async def test_typing_ends_by_itself(env: ZaloEnv) -> None:
    """The typing indicator goes off after five seconds of the clock."""
    await env.result("sendChatAction", chat_id=LAN, action="typing")
    env.clock.advance(5.1)
    assert (await env.user("GET", f"/chats/{LAN}/messages"))["typing"] is False


async def test_group_messages_say_group(env: ZaloEnv) -> None:
    """A user's text in a group carries chat_type GROUP and the group's id."""
    group = await env.user("POST", "/chats", {"title": "Tổ công tác", "members": [LAN]})
    await env.user("POST", f"/chats/{group['id']}/messages", {"text": "Chào", "from_id": LAN})
    update = await env.result("getUpdates", timeout=0)
    assert update["message"]["chat"] == {"id": group["id"], "chat_type": "GROUP"}
    await env.result("sendMessage", chat_id=group["id"], text="Đã nhận")


async def test_user_api_sends_and_reads(env: ZaloEnv) -> None:
    """The user API sends a persona's text and reads both directions in order."""
    sent = await env.user("POST", f"/chats/{LAN}/messages", {"text": "1"})
    assert sent["update"]["message"]["text"] == "1"
    await env.result("getUpdates", timeout=0)
    await env.result("sendMessage", chat_id=LAN, text="Cảm ơn Ông/Bà")
    shown = await env.bot_messages(LAN)
    assert [(m["sender"], m["text"]) for m in shown] == [("user", "1"), ("bot", "Cảm ơn Ông/Bà")]
    later = await env.user("GET", f"/chats/{LAN}/messages?since={shown[0]['version']}")
    assert [m["text"] for m in later["messages"]] == ["Cảm ơn Ông/Bà"]


async def test_user_api_waits_for_the_bot(env: ZaloEnv) -> None:
    """Reading with ?wait= returns as soon as the bot writes."""
    read = asyncio.create_task(env.user("GET", f"/chats/{LAN}/messages?since=0&wait=5"))
    await asyncio.sleep(0.05)
    await env.result("sendMessage", chat_id=LAN, text="Xong")
    result = await asyncio.wait_for(read, 5)
    assert [m["text"] for m in result["messages"]] == ["Xong"]


async def test_personas_are_kept_and_made_users(env: ZaloEnv) -> None:
    """Zalo personas create their users; OA personas follow the OA."""
    personas = [
        {
            "id": "citizen",
            "label": "Bà Hoa",
            "role": "Công dân",
            "unit": "Phường 1",
            "user_id": 7100000000000000201,
            "surface": "oa",
        },
    ]
    stored = await env.user("PUT", "/personas", personas)
    assert stored[0]["user_id"] == "7100000000000000201"
    assert stored[0]["channel"] == "zalo"
    assert env.zalo.oa.followers["7100000000000000201"].followed
    assert [u["display_name"] for u in await env.user("GET", "/users")][-1] == "Bà Hoa"


async def test_reset_forgets_messages_but_keeps_personas(env: ZaloEnv) -> None:
    """Reset forgets users' messages and updates; personas stay."""
    await env.user(
        "PUT",
        "/personas",
        [
            {"id": "p", "label": "Anh Nam", "role": "Cán bộ", "unit": "UBND", "user_id": "71"},
        ],
    )
    env.zalo.send_text("71", "x")
    await env.user("POST", "/reset")
    assert await env.user("GET", "/updates") == []
    assert [u["id"] for u in await env.user("GET", "/users")] == ["71"]


async def test_wait_for_messages_helper(env: ZaloEnv) -> None:
    """The Python helper waits for the bot's messages and reads both surfaces."""
    waiting = asyncio.create_task(env.zalo.wait_for_messages(LAN, 1, seconds=5))
    await env.result("sendMessage", chat_id=LAN, text="Một")
    assert [m["text"] for m in await waiting] == ["Một"]
    assert [m["sender"] for m in env.zalo.messages(LAN)] == ["bot"]
    with pytest.raises(TimeoutError):
        await env.zalo.wait_for_messages(LAN, 2, seconds=0.05)


async def test_stopping_ends_a_long_poll() -> None:
    """A pending getUpdates is answered when the server stops, without waiting its timeout."""
    async with zalo_env() as env:
        poll = asyncio.create_task(env.call("getUpdates", timeout=50))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(env.server.stop())
        _, body = await asyncio.wait_for(poll, 2)
        await asyncio.wait_for(stopping, 2)
    assert body["error_code"] == 408
