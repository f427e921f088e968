"""Flood limits: 429 with retry_after per private chat, per group, overall; on a fake clock."""

from __future__ import annotations

import pytest
import telegram

from bot.sandbox import FakeTime, Limits, SandboxServer, User
from bot.sandbox.limits import FloodControl
from tests.sandbox.conftest import retry_seconds

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def test_private_chat_burst_then_retry_after(
    server: SandboxServer, tg: telegram.Bot, lan: User, fake_time: FakeTime
) -> None:
    """Three quick messages pass, the fourth gets RetryAfter(1); after 1 s it passes."""
    for n in range(3):
        await tg.send_message(lan.id, f"tin {n}")
    with pytest.raises(telegram.error.RetryAfter) as caught:
        await tg.send_message(lan.id, "quá nhanh")
    assert retry_seconds(caught.value) == 1
    fake_time.advance(1.0)
    assert (await tg.send_message(lan.id, "được rồi")).text == "được rồi"
    counters = server.counters()
    assert counters.accepted_by_chat[lan.id] == 4
    assert counters.rate_limited_by_chat[lan.id] == 1
    assert [m["text"] for m in server.messages(lan.id)] == ["tin 0", "tin 1", "tin 2", "được rồi"]


async def test_429_body_matches_telegram(server: SandboxServer, http, lan: User) -> None:
    """The raw 429 answer has Telegram's description and parameters.retry_after."""
    url = f"/bot{server.sandbox.bot().identity.token}/sendMessage"
    for _ in range(3):
        async with http.post(url, json={"chat_id": lan.id, "text": "x"}) as resp:
            assert resp.status == 200
    async with http.post(url, json={"chat_id": lan.id, "text": "x"}) as resp:
        assert resp.status == 429
        assert await resp.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        }


async def test_group_allows_twenty_per_minute(
    server: SandboxServer, tg: telegram.Bot, lan: User, fake_time: FakeTime
) -> None:
    """A group takes 20 messages, then asks to wait 3 s (20 per minute)."""
    group = server.create_group("Tổ một cửa", [lan.id])
    for n in range(20):
        await tg.send_message(group.id, f"thông báo {n}")
    with pytest.raises(telegram.error.RetryAfter) as caught:
        await tg.send_message(group.id, "thêm")
    assert retry_seconds(caught.value) == 3
    fake_time.advance(3.0)
    assert (await tg.send_message(group.id, "thêm")).chat.title == "Tổ một cửa"
    assert server.counters().rate_limited_by_chat[group.id] == 1


async def test_global_limit_across_chats(
    server: SandboxServer, tg: telegram.Bot, fake_time: FakeTime
) -> None:
    """31 messages to 31 different chats in one instant: the 31st is limited."""
    users = [server.create_user(f"Người {n}") for n in range(31)]
    for user in users[:30]:
        await tg.send_message(user.id, "Thông báo chung")
    with pytest.raises(telegram.error.RetryAfter):
        await tg.send_message(users[30].id, "Thông báo chung")
    counters = server.counters()
    assert counters.accepted_total == 30
    assert counters.rate_limited_total == 1
    fake_time.advance(0.1)
    assert await tg.send_message(users[30].id, "Thông báo chung")


async def test_limits_can_be_switched_off_and_scaled(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """With limits off everything passes; speed=10 allows a 30-message private burst."""
    server.set_limits(Limits.off())
    for n in range(10):
        await tg.send_message(lan.id, f"nhanh {n}")
    server.set_limits(Limits(chat_burst=30, speed=10))
    for n in range(30):
        await tg.send_message(lan.id, f"rất nhanh {n}")
    assert server.counters().rate_limited_total == 0


def test_paid_broadcast_allows_a_thousand_per_second() -> None:
    """allow_paid_broadcast uses the 1000/s bucket instead of 30/s."""
    clock = FakeTime()
    flood = FloodControl(Limits(chat_burst=1), clock)
    admitted = sum(flood.admit(chat, False, paid=True) == 0 for chat in range(1000))
    assert admitted == 1000
    assert flood.admit(5000, False, paid=True) == 1
    assert flood.admit(5001, False, paid=False) == 0


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    """A bucket at 1 message per 2.5 s asks to wait 3 s, never 0."""
    clock = FakeTime()
    flood = FloodControl(Limits(chat_rate=0.4, chat_burst=1), clock)
    assert flood.admit(1, False) == 0
    assert flood.admit(1, False) == 3
    clock.advance(2.4)
    assert flood.admit(1, False) == 1
    clock.advance(0.1)
    assert flood.admit(1, False) == 0
