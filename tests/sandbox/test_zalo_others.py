"""The emulator sends what real Zalo users send besides text: images, stickers and the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sandbox.zalo_support import ZaloEnv, zalo_env

LAN = "7100000000000000101"


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Zalo and one user, Lan."""
    async with zalo_env() as started:
        started.zalo.create_user("Nguyễn Thị Lan", user_id=LAN)
        yield started


@pytest.mark.parametrize(
    ("kind", "body", "event", "fields"),
    [
        ("image", {"photo": "https://img.example/a.jpg", "caption": "5"}, "image", {"photo"}),
        ("sticker", {"sticker": "stk-9"}, "sticker", {"sticker"}),
        ("unsupported", {}, "unsupported", set()),
    ],
)
async def test_a_user_sends_an_update_without_text(env: ZaloEnv, kind, body, event, fields):
    """The update carries the real event name, the sender and the chat, and no 'text'."""
    sent = await env.user("POST", f"/chats/{LAN}/others", {"kind": kind, **body})
    update = await env.result("getUpdates", timeout=0)
    assert update["event_name"] == f"message.{event}.received"
    message = update["message"]
    assert message["message_id"] == sent["message_id"]
    assert message["from"]["id"] == LAN
    assert message["chat"]["id"] == LAN
    assert "text" not in message
    assert fields <= set(message)


async def test_an_unknown_kind_is_refused_by_name(env: ZaloEnv):
    with pytest.raises(Exception, match="kind must be one of image, sticker, unsupported"):
        await env.user("POST", f"/chats/{LAN}/others", {"kind": "video"})
