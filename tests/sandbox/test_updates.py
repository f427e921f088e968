"""getUpdates: user texts and button presses arrive, offsets confirm, conflicts are reported."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import telegram

from bot.sandbox import DEFAULT_TOKEN, ApiError, SandboxServer, User
from tests.sandbox.conftest import message_of, query_of


async def test_user_text_arrives_with_command_entity(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """/start with a payload becomes a message with a bot_command entity."""
    update_id = server.send_text(lan.id, "/start dang-ky")
    [update] = await tg.get_updates(timeout=0)
    assert update.update_id == update_id
    message = message_of(update)
    assert message.text == "/start dang-ky"
    assert message.from_user is not None
    assert message.from_user.first_name == "Nguyễn Thị Lan"
    assert message.chat.type == "private"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]


async def test_offset_confirms_updates(server: SandboxServer, tg: telegram.Bot, lan: User) -> None:
    """Updates stay until confirmed with a higher offset, as on Telegram."""
    first = server.send_text(lan.id, "Xin chào")
    sent = await tg.send_message(
        lan.id,
        "Chọn",
        reply_markup=telegram.InlineKeyboardMarkup(
            [[telegram.InlineKeyboardButton("Có", callback_data="yes")]]
        ),
    )
    second = server.press_button(lan.id, sent.message_id, "yes")
    updates = await tg.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [first, second]
    assert query_of(updates[1]).data == "yes"
    assert query_of(updates[1]).from_user.id == lan.id
    again = await tg.get_updates(timeout=0)
    assert [u.update_id for u in again] == [first, second]
    assert await tg.get_updates(offset=second + 1, timeout=0) == ()
    assert server.pending_updates() == []


async def test_limit_and_negative_offset(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """limit caps the batch; a negative offset keeps only the newest updates."""
    ids = [server.send_text(lan.id, f"tin {n}") for n in range(5)]
    assert [u.update_id for u in await tg.get_updates(limit=2, timeout=0)] == ids[:2]
    newest = await tg.get_updates(offset=-1, timeout=0)
    assert [message_of(u).text for u in newest] == ["tin 4"]


async def test_long_poll_returns_when_a_user_writes(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """A waiting getUpdates returns as soon as a user sends something."""
    poll = asyncio.create_task(tg.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    assert not poll.done()
    server.send_text(lan.id, "Có ai không?")
    updates = await asyncio.wait_for(poll, 2)
    assert [message_of(u).text for u in updates] == ["Có ai không?"]


async def test_second_poller_terminates_the_first(
    server: SandboxServer, tg: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    """Two concurrent getUpdates (two bot instances): the older one gets 409 Conflict."""
    first = asyncio.create_task(tg.get_updates(timeout=10))
    updates = server.sandbox.bot().updates
    for _ in range(200):
        if updates.poll_generation:
            break
        await asyncio.sleep(0.01)
    async with http.get(f"/bot{DEFAULT_TOKEN}/getUpdates", params={"timeout": "0"}) as resp:
        assert await resp.json() == {"ok": True, "result": []}
    with pytest.raises(telegram.error.Conflict, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 2)


async def test_allowed_updates_filters_new_updates(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """After allowed_updates=["callback_query"], user texts are not queued."""
    await tg.get_updates(timeout=0, allowed_updates=["callback_query"])
    server.send_text(lan.id, "bị lọc")
    assert await tg.get_updates(timeout=0) == ()


async def test_get_updates_conflicts_with_webhook(tg: telegram.Bot) -> None:
    """getUpdates while a webhook is set answers 409."""
    await tg.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(telegram.error.Conflict, match="webhook is active"):
        await tg.get_updates(timeout=0)
    assert await tg.delete_webhook()
    assert await tg.get_updates(timeout=0) == ()


async def test_group_messages_carry_the_sender(
    server: SandboxServer, tg: telegram.Bot, lan: User, minh: User
) -> None:
    """In a group a user must be named; the update has the group chat and the user."""
    group = server.create_group("Tổ công tác", [lan.id])
    with pytest.raises(ApiError, match="from_id is needed"):
        server.send_text(group.id, "ai gửi?")
    server.send_text(group.id, "/baocao@reformbot_sandbox_bot", from_id=minh.id)
    message = message_of((await tg.get_updates(timeout=0))[0])
    assert (message.chat.type, message.chat.title) == ("group", "Tổ công tác")
    assert message.from_user is not None
    assert message.from_user.id == minh.id
    assert message.entities[0].length == len("/baocao@reformbot_sandbox_bot")
    assert minh.id in group.members


async def test_wait_for_messages_helper(server: SandboxServer, tg: telegram.Bot, lan: User) -> None:
    """wait_for_messages returns once the bot has sent enough messages to the chat."""
    waiting = asyncio.create_task(server.wait_for_messages(lan.id, 2, seconds=2))
    await tg.send_message(lan.id, "một")
    await tg.send_message(lan.id, "hai")
    assert [m["text"] for m in await waiting] == ["một", "hai"]
    with pytest.raises(TimeoutError):
        await server.wait_for_messages(lan.id, 3, seconds=0.05)
