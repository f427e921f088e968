"""Fault injection: blocked users, 5xx answers, slow answers, dropped connections."""

from __future__ import annotations

import time

import pytest
import telegram

from bot.sandbox import FaultRule, Faults, SandboxServer, User


async def test_blocked_user_gets_403(
    server: SandboxServer, tg: telegram.Bot, lan: User, minh: User
) -> None:
    """A user who blocked the bot: 403 Forbidden; others still receive messages."""
    server.set_faults(Faults(blocked=frozenset({lan.id})))
    with pytest.raises(telegram.error.Forbidden, match="bot was blocked by the user"):
        await tg.send_message(lan.id, "Nhắc hạn hồ sơ")
    assert await tg.send_message(minh.id, "Nhắc hạn hồ sơ")
    counters = server.counters()
    assert counters.forbidden_total == 1
    assert counters.forbidden_by_chat[lan.id] == 1
    assert server.messages(lan.id) == []


async def test_chat_rule_set_and_cleared_at_runtime(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """A per-chat rule blocks one chat until it is cleared."""
    server.set_chat_faults(lan.id, FaultRule(blocked=True))
    with pytest.raises(telegram.error.Forbidden):
        await tg.send_message(lan.id, "một")
    server.set_chat_faults(lan.id, None)
    assert (await tg.send_message(lan.id, "hai")).text == "hai"


async def test_group_that_kicked_the_bot(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """A blocked group answers "bot was kicked from the group chat"."""
    group = server.create_group("Phòng Tư pháp", [lan.id])
    server.set_chat_faults(group.id, FaultRule(blocked=True))
    with pytest.raises(telegram.error.Forbidden, match="kicked"):
        await tg.send_message(group.id, "x")


async def test_all_requests_fail_with_500(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """error_rate=1 turns every send into a 500, counted as injected."""
    server.set_faults(Faults(error_rate=1.0, seed=1))
    with pytest.raises(telegram.error.NetworkError, match="Internal Server Error"):
        await tg.send_message(lan.id, "lỗi")
    assert server.counters().server_errors_total == 1
    assert await tg.get_me()
    assert server.messages(lan.id) == []


async def test_seeded_error_share_is_reproducible(
    server: SandboxServer, tg: telegram.Bot, lan: User
) -> None:
    """The same seed gives the same sequence of failures."""

    async def run() -> list[bool]:
        """Send 12 messages and record which ones failed."""
        server.set_faults(Faults(error_rate=0.5, seed=42))
        outcomes = []
        for n in range(12):
            try:
                await tg.send_message(lan.id, f"{n}")
                outcomes.append(True)
            except telegram.error.NetworkError:
                outcomes.append(False)
        return outcomes

    server.set_limits(server.sandbox.limits.off())
    first, second = await run(), await run()
    assert first == second
    assert 0 < first.count(False) < 12
    assert server.counters().server_errors_total == 2 * first.count(False)


async def test_slow_answers(server: SandboxServer, tg: telegram.Bot, lan: User) -> None:
    """delay_ms makes a send take at least that long."""
    server.set_chat_faults(lan.id, FaultRule(delay_ms=150))
    started = time.monotonic()
    await tg.send_message(lan.id, "chậm")
    assert time.monotonic() - started >= 0.15
    assert server.counters().delayed_total == 1


async def test_dropped_connection(server: SandboxServer, tg: telegram.Bot, lan: User) -> None:
    """drop_rate=1 closes the connection without an answer; PTB sees a NetworkError."""
    server.set_chat_faults(lan.id, FaultRule(drop_rate=1.0))
    with pytest.raises(telegram.error.NetworkError):
        await tg.send_message(lan.id, "mất kết nối")
    assert server.counters().dropped_total == 1
    assert server.messages(lan.id) == []
